"""Benchmark the metrics: every figure of `tagrank eval` over a 107,859 x 1,006 score matrix.

    python scripts/bench_eval.py
"""

from __future__ import annotations

import time

import numpy as np


def main() -> None:
    from tagrank.metrics import evaluate_scores

    rng = np.random.default_rng(0)
    n, L = 107859, 1006
    scores = rng.random((n, L), dtype=np.float32)
    truth = rng.random((n, L)) < 0.01
    labels = [f"l{i}" for i in range(L)]
    start = time.perf_counter()
    evaluate_scores(scores, truth, labels, ks=(3, 5))
    print(f"metrics (top-3/5 per-class and overall P/R/F1, class and sample mAP, N+) over {n} x {L}: "
          f"{time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
