"""Benchmark the label space: default vectors load, a 400k-word index build, index load, `similar` latency.

    python scripts/bench_label_space.py

Needs no ../shared. Times are medians over repeats, in one process on this machine.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(fn, repeats=5):
    times, value = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), value


def main() -> None:
    cold = subprocess.run([sys.executable, "-c", "import time; t=time.perf_counter(); "
                           "from tagrank.labels.encoders.word_vectors import WordVectors; WordVectors.default(); "
                           "print(time.perf_counter()-t)"], capture_output=True, text=True, check=True)
    from tagrank.labels.encoders import word_vectors as vectors_module
    from tagrank.labels.index import LabelIndex
    from tagrank.labels.encoders.word_vectors import WordVectors

    def fresh_load():
        vectors_module._default_cache = None
        return WordVectors.default()

    load_s, vectors = timed(fresh_load)
    words = list(vectors.keyed.index_to_key)
    build_s, index = timed(lambda: LabelIndex.from_vectors(vectors), repeats=3)
    tags_s, _ = timed(lambda: LabelIndex.build(words[:100000], vectors), repeats=1)
    with tempfile.TemporaryDirectory() as tmp:
        save_s, _ = timed(lambda: index.save(Path(tmp) / "idx"), repeats=1)
        reload_s, loaded = timed(lambda: LabelIndex.load(Path(tmp) / "idx", vectors), repeats=3)
        size = sum(f.stat().st_size for f in (Path(tmp) / "idx").iterdir())
    queries = ["dog", "sunset", "beach", "ice cream", "mountain", "car", "wedding", "snow", "city", "flower"]
    similar_s, _ = timed(lambda: [loaded.similar(q, 10, vectors) for q in queries], repeats=3)
    cli_s, _ = timed(lambda: subprocess.run(["tagrank", "similar", "dog", "--top", "5"], capture_output=True,
                                            check=True), repeats=3)
    print(f"default vectors: {len(vectors)} words x {vectors.dim}")
    print(f"  cold load in a fresh process (imports included): {float(cold.stdout):.2f} s")
    print(f"  load, imports warm:                              {load_s * 1000:.0f} ms")
    print(f"index of all {len(index)} words: build {build_s:.2f} s, save {save_s:.2f} s "
          f"({size / 1e6:.0f} MB), load+verify {reload_s:.2f} s")
    print(f"index of 100,000 tags through tag normalisation: {tags_s:.2f} s")
    print(f"similar over 400k words (exact FAISS inner product): {similar_s / len(queries) * 1000:.1f} ms per query")
    print(f"`tagrank similar dog --top 5` as a fresh process: {cli_s:.2f} s")


if __name__ == "__main__":
    main()
