"""Benchmark training: samples/s on cached features per method (against PyTorch's default Adam in the same
run), and feature extraction vs bare timm.

    python scripts/bench_train.py [--shared ../shared] [--images 256]

Extraction runs tagrank's path (decode in a background thread, preprocess, CNN, cache write) over real
Corel5k photos and compares it with a bare timm forward pass of the same backbone over tensors already
in memory, in the same process: the ratio is the share of the CNN's own speed that tagrank keeps.
"""

from __future__ import annotations

import argparse
import glob
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def bare_forward(backbone, paths: list[str], forward=None) -> float:
    """img/s of the CNN alone on the same photos, decoded and preprocessed beforehand, in the batches tagging
    runs (32 photos in input order, split by photo shape); ``forward``: another runtime's
    (tagrank.images.runtimes)."""
    from tagrank.images.photos import load_image

    photos = [backbone.preprocess(load_image(p, min_side=backbone.decode_side)) for p in paths]
    batches = [photos[i:i + 32] for i in range(0, len(photos), 32)]
    with torch.inference_mode():
        for batch in batches:  # warm: each photo shape and batch size runs once first
            backbone.features(batch, 32, forward)
        start = time.perf_counter()
        for batch in batches:
            backbone.features(batch, 32, forward)
    return len(paths) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--images", type=int, default=256)
    args = parser.parse_args()
    started = time.perf_counter()
    from tagrank.evaluation.markdown import table, write_section
    from tagrank.images.backbone import Backbone
    from tagrank.config import load_config
    from tagrank.images.datasets import load_dataset
    from tagrank.images.features import FeatureCache
    from tagrank.methods import get_method
    from tagrank.labels.encoders.word_vectors import WordVectors
    from tagrank.training.trainer import adam

    paths = sorted(glob.glob(str(args.shared / "data" / "corel5k" / "images" / "train" / "*.jpeg")))[: args.images]
    backbone = Backbone("lite0")
    with tempfile.TemporaryDirectory() as tmp:
        FeatureCache(backbone, tmp).get(paths[:32], progress=False)  # warm-up: allocator, oneDNN primitives
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        FeatureCache(backbone, tmp).get(paths, progress=False)
        ours = len(paths) / (time.perf_counter() - start)
    bare = bare_forward(backbone, paths)
    extraction = (f"Feature extraction, Lite0 224 px, {len(paths)} Corel5k photos, batch 32: tagrank (decoding in "
                  f"background threads, preprocess, CNN, cache write) {ours:.1f} photos/s against the bare forward "
                  f"of the same CNN on photos decoded beforehand {bare:.1f} photos/s: **{ours / bare:.0%}**.")
    print(extraction)

    data = load_dataset("corel5k", args.shared / "data" / "corel5k", "train")
    features = FeatureCache(backbone).get(data.paths, progress=False)  # the shared cache (extracted once)
    vectors = WordVectors.default()
    X = torch.from_numpy(features.features)
    Y = torch.from_numpy(data.matrix)
    label_vectors = torch.from_numpy(vectors.embed(data.labels).matrix) if len(vectors.embed(data.labels).oov) == 0 else None
    print(f"training throughput on cached features ({len(X)} Corel5k images, {Y.shape[1]} labels, batch 64, "
          f"default configs; one epoch with tagrank's fused Adam, one with PyTorch's default Adam as the reference):")
    runs = [(name, None) for name in ("transform", "fast0tag", "warp", "bce")] + [("transform", 100)]
    rows = []
    for name, k in runs:
        config = load_config(ROOT / "configs" / f"{name}.toml")
        if k is not None:
            config.method_options.k = k
        rates = []
        for make_optimizer in (adam, torch.optim.Adam):
            torch.manual_seed(0)
            method = get_method(name)(config.method_options, X.shape[1], vectors.dim, Y.shape[1])
            optimizer = make_optimizer(method.parameters(), lr=1e-3)
            generator = torch.Generator().manual_seed(0)
            order = torch.randperm(len(X), generator=generator)
            start = time.perf_counter()
            for s in range(0, len(X), 64):
                idx = order[s:s + 64]
                loss = method.loss(X[idx], Y[idx], label_vectors, generator)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            rates.append(len(X) / (time.perf_counter() - start))
        label = name + (f" k={k}" if k is not None else "")
        rows.append([label, f"{rates[0]:,.0f}", f"{rates[1]:,.0f}", f"{rates[0] / rates[1]:.2f}×"])
        print(rows[-1], flush=True)
    reading = (f"Training throughput on cached features: one epoch of {len(X):,} Corel5k photos ({Y.shape[1]} labels, "
               "batch 64, the methods' configs) with tagrank's fused Adam, and one with PyTorch's default Adam as "
               "the reference, in the same run.")
    body = table(["config", "samples/s, fused Adam", "samples/s, torch.optim.Adam", "ratio"], rows) + "\n\n" + extraction
    write_section(ROOT / "BENCHMARKS.md", "training-speed", "### Training and extraction speed",
                  "python scripts/bench_train.py", time.perf_counter() - started, reading, body)


if __name__ == "__main__":
    main()
