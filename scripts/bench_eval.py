"""Benchmark the metrics: every figure of `tagrank eval` over a 107,859 x 1,006 score matrix.

    python scripts/bench_eval.py

The NUS-WIDE test set's size (107,859 photos, 1,006 labels with the 81 concepts' ZSL split). Scores are
random, labels 1 % positive. The reference, measured in the same run on the same matrix, is one stable
torch sort of every row (what the metrics used to need several of); the goal is at most 5 s on 2 cores.
"""

from __future__ import annotations

import time

import numpy as np
import torch


def main() -> None:
    from tagrank.evaluation.metrics import evaluate_scores

    started = time.perf_counter()
    rng = np.random.default_rng(0)
    n, L = 107859, 1006
    scores = rng.random((n, L), dtype=np.float32)
    truth = rng.random((n, L)) < 0.01
    labels = [f"l{i}" for i in range(L)]
    start = time.perf_counter()
    torch.sort(torch.from_numpy(scores), dim=1, descending=True, stable=True)
    reference = time.perf_counter() - start
    start = time.perf_counter()
    evaluate_scores(scores, truth, labels, ks=(3, 5))
    seconds = time.perf_counter() - start
    line = (f"metrics (top-3/5 per-class and overall P/R/F1, class and sample mAP, N+) over {n:,} × {L:,}: "
            f"{seconds:.1f} s = **{seconds / reference:.1f}×** one stable sort of its rows ({reference:.1f} s; "
            "goal: at most 5 s)")
    print(line)
    from pathlib import Path

    from tagrank.evaluation.markdown import write_section

    write_section(Path(__file__).resolve().parent.parent / "BENCHMARKS.md", "metrics-speed", "### Exact metrics at "
                  "NUS-WIDE's size", "python scripts/bench_eval.py", time.perf_counter() - started,
                  "Random scores, 1 % of the labels positive: NUS-WIDE's test set's size with the 81 concepts' ZSL "
                  "split; the reference is one stable torch sort of every row, in the same run.", line)


if __name__ == "__main__":
    main()
