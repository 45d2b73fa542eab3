"""Batch tagging on Ray against single-process tagging of the same photos, in one run.

    python scripts/bench_batch.py [--shared ../shared] [--photos 1000] [--workers 2] [--shard-size 250]

Photos: the first ``--photos`` Corel5k training photos. The reference is `Tagger.rank` in this process
(batch 32, every core); the measured run is `tagrank batch --ray` on a local Ray cluster with
``--workers`` actors, each loading the model once (start-up included), into a fresh output folder.
"""

from __future__ import annotations

import argparse
import glob
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    import ray

    from tagrank.batch import BatchJob, run_batch
    from tagrank.tagger import Tagger

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--photos", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--shard-size", type=int, default=250)
    args = parser.parse_args()
    started = time.perf_counter()
    photos = sorted(glob.glob(str(args.shared / "data" / "corel5k" / "images" / "train" / "*.jpeg")))[: args.photos]
    if not photos:
        raise SystemExit(f"no Corel5k photos under {args.shared}")

    tagger = Tagger.load()
    tagger.rank(photos[:32])  # warm
    start = time.perf_counter()
    tagger.rank(photos, top=5, batch_size=32)
    single = len(photos) / (time.perf_counter() - start)

    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        summary = run_batch(photos, BatchJob(out), args.shard_size)
        in_process = summary["tagged_now"] / (time.perf_counter() - start)
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
        try:
            summary = run_batch(photos, BatchJob(out), args.shard_size, workers=args.workers, use_ray=True)
        finally:
            ray.shutdown()
        on_ray = summary["tagged_now"] / (time.perf_counter() - start)
    from tagrank.evaluation.markdown import table, write_section

    rows = [["`Tagger.rank` in one process (the reference)", f"{single:.1f}", "100 %"],
            ["`tagrank batch` in one process", f"{in_process:.1f}", f"**{in_process / single:.0%}**"],
            [f"`tagrank batch --ray`, {args.workers} actors, cluster start-up included", f"{on_ray:.1f}",
             f"**{on_ray / single:.0%}**"]]
    for row in rows:
        print(" | ".join(row))
    reading = (f"{len(photos)} Corel5k training photos, default model, shards of {args.shard_size} photos written "
               f"to a fresh folder; {summary['failed_now']} failed on Ray. Photos/s and the share of the reference's.")
    write_section(ROOT / "BENCHMARKS.md", "batch", "### Batch tagging", "python scripts/bench_batch.py",
                  time.perf_counter() - started, reading, table(["run", "photos/s", "share"], rows))


if __name__ == "__main__":
    main()
