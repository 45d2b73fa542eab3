"""Tune the methods on Corel5k's validation split, never its test split.

    python scripts/tune_corel5k.py [--shared ../shared] [--runs runs/tune] [--jobs 2] [--only NAME ...]

Every trial trains with ``tagrank.training.trainer`` on the training split; ``train`` holds out the same 10% of it
(seed 0) for its best-epoch choice, and the trial is scored on those 450 held-out photos: per-word
P/R/F1@5, N+, overall F1@5 and class mAP, the benchmark's metrics. A trial is a method with config
fields set on top of the dataclass defaults (the paper's numbers), so each line says all it changed.

configs/<method>.toml hold each method's trial with the highest validation per-word F1@5 (the
benchmark's headline; near-ties go to the cheaper trial).

Results go to benchmarks/corel5k_tuning.jsonl, one line per trial; trials already there with the same
settings are not rerun. ``scripts/bench_corel5k.py`` renders that file into BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from tagrank.training.trials import TrialLog

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "corel5k_tuning.jsonl"

# (name, method, {"table.field": value}) on top of the defaults. Grouped by question; the order is the
# order they were asked in.
BEST = {"method.k": 25, "method.normalize_vectors": True, "method.pairing": "each",
        "method.positive_weight_power": 0.5}
BASELINE_EXTRAS = {"method.hidden": [2048], "method.dropout": 0.5, "backbone.flip_features": True}
TRIALS: list[tuple[str, str, dict]] = [
    # The paper's transformation model, then one change at a time.
    ("transform paper", "transform", {}),
    ("transform k=25", "transform", {"method.k": 25}),
    ("transform k=25 dropout 0.5", "transform", {"method.k": 25, "method.dropout": 0.5}),
    ("transform k=25 weight decay 1e-4", "transform", {"method.k": 25, "train.weight_decay": 1e-4}),
    ("transform k=25 unit vectors", "transform", {"method.k": 25, "method.normalize_vectors": True}),
    ("transform k=25 pairing each", "transform", {"method.k": 25, "method.pairing": "each"}),
    ("transform k=25 positive weight 0.5", "transform", {"method.k": 25, "method.positive_weight_power": 0.5}),
    ("transform k=25 positive weight 1", "transform", {"method.k": 25, "method.positive_weight_power": 1.0}),
    # Together: unit vectors, each positive against each negative, rare positives weighted up.
    ("transform combined", "transform", BEST),
    ("transform combined positive weight 0.75", "transform", {**BEST, "method.positive_weight_power": 0.75}),
    ("transform combined dropout 0.5", "transform", {**BEST, "method.dropout": 0.5}),
    ("transform combined k=10", "transform", {**BEST, "method.k": 10}),
    ("transform combined k=50", "transform", {**BEST, "method.k": 50}),
    ("transform combined hidden 2048", "transform", {**BEST, "method.hidden": [2048]}),
    ("transform combined 20 epochs", "transform", {**BEST, "train.epochs": 20}),
    ("transform combined lite0 mirrored", "transform", {**BEST, "backbone.flip_features": True}),
    ("transform combined lite2", "transform", {**BEST, "backbone.name": "lite2"}),
    ("transform combined lite2 mirrored", "transform", {**BEST, "backbone.name": "lite2",
                                                        "backbone.flip_features": True}),
    ("transform combined negatives 100", "transform", {**BEST, "method.negatives": 100}),
    ("transform combined negatives 300", "transform", {**BEST, "method.negatives": 300}),
    # The small gains above, together.
    ("transform combined hidden 2048 dropout 0.5 mirrored", "transform",
     {**BEST, "method.hidden": [2048], "method.dropout": 0.5, "backbone.flip_features": True}),
    # An offset per image (‖A [w; 1]‖), and the learning rate, on the chosen setup.
    ("transform chosen affine", "transform", {**BEST, "method.hidden": [2048], "method.affine": True}),
    ("transform chosen lr 3e-4", "transform", {**BEST, "method.hidden": [2048], "train.lr": 3e-4}),
    ("transform chosen negatives 300", "transform", {**BEST, "method.hidden": [2048], "method.negatives": 300}),
    ("transform chosen word layer 256", "transform", {**BEST, "method.hidden": [2048], "method.word_hidden": 256}),
    ("transform chosen seed 1", "transform", {**BEST, "method.hidden": [2048], "train.seed": 1}),
    # WARP's rank-weighted loss on the transformation model's distances (WARP leads the baselines).
    ("transform warp loss", "transform", {"method.k": 25, "method.normalize_vectors": True, "method.hidden": [2048],
                                          "method.loss": "warp", "method.negatives": 100}),
    ("transform warp loss extras", "transform", {"method.k": 25, "method.normalize_vectors": True,
                                                 "method.loss": "warp", "method.negatives": 100,
                                                 **BASELINE_EXTRAS}),
    # Longer training, and the Lite2 backbone (mirrored) on the chosen setup.
    ("transform chosen 80 epochs", "transform", {**BEST, "method.hidden": [2048], "train.epochs": 80}),
    ("transform chosen lite2 mirrored", "transform", {**BEST, "method.hidden": [2048], "backbone.name": "lite2",
                                                      "backbone.flip_features": True}),
    # The baselines get the same levers.
    ("fast0tag defaults", "fast0tag", {}),
    ("fast0tag positive weight 0.5", "fast0tag", {"method.positive_weight_power": 0.5}),
    ("fast0tag positive weight 0.5 dropout 0.5", "fast0tag",
     {"method.positive_weight_power": 0.5, "method.dropout": 0.5}),
    ("warp defaults", "warp", {}),
    ("warp positive weight 0.5", "warp", {"method.positive_weight_power": 0.5}),
    ("warp positive weight 0.5 dropout 0.5", "warp", {"method.positive_weight_power": 0.5, "method.dropout": 0.5}),
    ("bce defaults", "bce", {}),
    ("bce class weighting", "bce", {"method.class_weighting": True}),
    ("bce positive weight 0.5", "bce", {"method.positive_weight_power": 0.5}),
    ("bce positive weight 0.5 dropout 0.5", "bce", {"method.positive_weight_power": 0.5, "method.dropout": 0.5}),
    # And the transformation model's final extras (2048 wide, mirrored photos) on top of their best.
    ("fast0tag tuned", "fast0tag", {**BASELINE_EXTRAS, "method.positive_weight_power": 0.5}),
    ("warp tuned", "warp", BASELINE_EXTRAS),
    ("warp tuned seed 1", "warp", {**BASELINE_EXTRAS, "train.seed": 1}),
    ("bce tuned", "bce", {**BASELINE_EXTRAS, "method.positive_weight_power": 0.5}),
    ("warp tuned lite2", "warp", {**BASELINE_EXTRAS, "backbone.name": "lite2"}),
    ("bce tuned lite2", "bce", {**BASELINE_EXTRAS, "method.positive_weight_power": 0.5, "backbone.name": "lite2"}),
    ("fast0tag tuned lite2", "fast0tag", {**BASELINE_EXTRAS, "method.positive_weight_power": 0.5,
                                          "backbone.name": "lite2"}),
]


def _set(config, key: str, value) -> None:
    table, field = key.split(".")
    target = config.method_options if table == "method" else getattr(config, table)
    if not hasattr(target, field):
        raise SystemExit(f"trial sets unknown config field {key}")
    setattr(target, field, value)


def run_trial(name: str, method: str, settings: dict, root: str, runs: str) -> dict:
    import shutil

    from tagrank.config import load_config
    from tagrank.images.datasets import load_dataset
    from tagrank.evaluation.protocols import photo_metrics
    from tagrank.tagger import Tagger
    from tagrank.training.trainer import run_training
    from tagrank.labels.encoders.word_vectors import WordVectors

    torch.set_num_threads(1)  # trials run side by side, one core each
    config = load_config(None, method)
    for key, value in settings.items():
        _set(config, key, value)
    out = Path(runs) / name.replace(" ", "_").replace("=", "")
    if out.exists():
        shutil.rmtree(out)
    started = time.perf_counter()
    result = run_training("corel5k", root, config, out, WordVectors.default(), progress=False)
    seconds = time.perf_counter() - started

    data = load_dataset("corel5k", root, "train")
    row_of = {p: i for i, p in enumerate(data.paths)}
    validation = data.subset([row_of[p] for p in result.validation_paths])
    m = photo_metrics(Tagger.load(out), validation, ks=(5,), cache_dir=config.backbone.cache_dir)
    t = m.top_k[5]
    return {"name": name, "method": method, "settings": settings, "val_images": len(validation), "val_words": len(m.labels),
            "P@5": t.CP, "R@5": t.CR, "F1@5": t.CF1, "N+@5": t.n_plus, "O-F1@5": t.OF1, "mAP": m.mAP,
            "best_epoch": result.best_epoch, "seconds": round(seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "tune")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--only", nargs="*", help="trial names to (re)run; default: those not yet in the results")
    args = parser.parse_args()
    root = args.shared / "data" / "corel5k"

    log = TrialLog(RESULTS, [t[0] for t in TRIALS])
    wanted = log.wanted(TRIALS, args.only)
    for backbone in {t[2].get("backbone.name", "lite0") for t in wanted}:
        _extract_features(root, backbone, any(t[2].get("backbone.flip_features") for t in wanted))
    # spawn, not fork: a child forked after this process ran torch's thread pool (feature
    # extraction) can hang when it starts threads of its own
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {t[0]: pool.submit(run_trial, *t, str(root), str(args.runs)) for t in wanted}
        for name, future in futures.items():
            entry = future.result()
            log.record(entry)
            print(f"{name}: val per-word F1@5 {100 * entry['F1@5']:.1f}, N+ {entry['N+@5']}, "
                  f"mAP {100 * entry['mAP']:.1f} ({entry['seconds']:.0f} s)", flush=True)


def _extract_features(root: Path, backbone: str, flip: bool) -> None:
    """Fill the feature cache once, before the trials run side by side (they would race to write it)."""
    from tagrank.images.backbone import Backbone
    from tagrank.images.datasets import load_dataset
    from tagrank.images.features import FeatureCache

    FeatureCache(Backbone(backbone), None, flip=flip).get(load_dataset("corel5k", root, "train").paths, progress=False)


if __name__ == "__main__":
    main()
