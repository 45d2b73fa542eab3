"""Benchmark `tagrank rank`: tagging throughput vs the bare CNN, ranking time vs vocabulary size, cold start.

    python scripts/bench_rank.py [--shared ../shared] [--images 256] [--big 1000000,3000000]

1. Tagging a folder of Corel5k photos with the embedded default model (decode, CNN, ranking of its
   1,075-tag vocabulary) against a bare timm forward pass of the same backbone on in-memory tensors.
2. Ranking alone, per image, for vocabularies of 1k-400k GloVe words (d = 50, the default model's real A
   for Corel5k photos, batches of 64 images) and of 1M/3M random 300-d vectors (random A, k = 100,
   batches of 8). GFLOP/s count the issue's cost model, 2·V·d·min(k, d) per image, against a plain
   torch.mm peak (4096², float32) measured in the same run.
3. Cold start: `tagrank rank examples/cat.jpg` as a fresh process against a bare `python -c "import torch"`,
   median of 5 each, interleaved in the same run; the goal is a ratio of at most 1.5. The first, untimed
   run fills the on-disk vocabulary cache (as any user's first run does).

    python scripts/bench_rank.py --cold-start-only
"""

from __future__ import annotations

import argparse
import sys
import glob
import subprocess
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))


def mm_peak() -> float:
    a = torch.randn(4096, 4096)
    a @ a
    start = time.perf_counter()
    for _ in range(3):
        a @ a
    return 3 * 2 * 4096 ** 3 / (time.perf_counter() - start) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--big", default="1000000,3000000")
    parser.add_argument("--cold-start-only", action="store_true")
    args = parser.parse_args()
    if args.cold_start_only:
        cold_start()
        return
    from bench_train import bare_forward

    from tagrank.ranking import Vocabulary, top_k
    from tagrank.tagger import Tagger
    from tagrank.encoders.word_vectors import WordVectors

    paths = sorted(glob.glob(str(args.shared / "data" / "corel5k" / "images" / "test" / "*.jpeg")))[: args.images]
    tagger = Tagger.load()
    tagger.prepare()
    tagger.rank(paths[:32], top=5)  # warm-up
    start = time.perf_counter()
    tagger.rank(paths, top=5)
    ours = len(paths) / (time.perf_counter() - start)
    bare = bare_forward(tagger.backbone, paths)
    start = time.perf_counter()
    for p in paths[:20]:
        tagger.rank([p], top=5)
    latency = (time.perf_counter() - start) / 20
    print(f"tagging {len(paths)} Corel5k photos, default model, {len(tagger.default_tags)}-tag vocabulary:")
    print(f"  bare timm forward (batch 32) {bare:.1f} img/s; tagrank {ours:.1f} img/s; ratio {ours / bare:.2f}")
    print(f"  one photo at a time: {latency * 1000:.0f} ms per image (decode + CNN + ranking)")

    peak = mm_peak()
    print(f"ranking time per image (torch.mm peak this run: {peak:.0f} GFLOP/s)")
    from tagrank.features import extract

    feats = torch.from_numpy(extract(tagger.backbone, paths[:64], progress=False).features)
    with torch.no_grad():
        factors = tagger.method.factors(feats)
    vectors = WordVectors.default()
    words = torch.from_numpy(np.array(vectors.keyed.vectors, dtype=np.float32))
    words = tagger.method.label_space(words)
    cases = [(f"{n // 1000}k GloVe words, d=50", words[:n], factors) for n in (1000, 10000, 100000, 400000)]
    gen = torch.Generator().manual_seed(0)
    for n in (int(v) for v in args.big.split(",") if v):
        big = torch.randn(n, 300, generator=gen)
        A = torch.randn(8, 100, 300, generator=gen)
        cases.append((f"{n / 1e6:g}M random vectors, d=300", big, A))
    for name, vocab_vectors, F in cases:
        vocab = Vocabulary(vocab_vectors)
        top_k(F[:2], vocab, 5, "norm")  # warm (and fills the quadratic cache where it applies)
        start = time.perf_counter()
        top_k(F, vocab, 5, "norm")
        seconds = time.perf_counter() - start
        kk, dd = F.shape[1], F.shape[2]
        flops = 2 * len(vocab) * dd * min(kk, dd) * F.shape[0]
        print(f"  {name:<30} batch {F.shape[0]:>2}: {seconds / F.shape[0] * 1000:8.2f} ms/image  "
              f"{flops / seconds / 1e9:6.0f} GFLOP/s ({flops / seconds / 1e9 / peak:.0%} of mm peak)")
        del vocab

    cold_start()


def cold_start(repeats: int = 5) -> None:
    """Median wall time of `tagrank rank examples/cat.jpg` and of `python -c "import torch"`, interleaved."""
    import statistics

    photo = ROOT / "examples" / "cat.jpg"
    commands = {"import torch": [sys.executable, "-c", "import torch"],
                "tagrank rank": [sys.executable, "-m", "tagrank.cli", "rank", str(photo), "--no-progress"]}
    subprocess.run(commands["tagrank rank"], check=True, capture_output=True)  # fills the vocabulary cache
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(repeats):
        for name, command in commands.items():
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            times[name].append(time.perf_counter() - start)
    torch_s, rank_s = statistics.median(times["import torch"]), statistics.median(times["tagrank rank"])
    print(f"cold start, median of {repeats}: `tagrank rank examples/cat.jpg` {rank_s:.2f} s, "
          f"`python -c 'import torch'` {torch_s:.2f} s: ratio {rank_s / torch_s:.2f} (goal <= 1.5)")

if __name__ == "__main__":
    main()
