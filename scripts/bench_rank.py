"""Benchmark `tagrank rank`: tagging throughput vs the bare CNN, ranking time vs vocabulary size, cold start.

    python scripts/bench_rank.py [--shared ../shared] [--images 256] [--big 1000000,3000000] [--phrases 3000000]

1. Tagging a folder of Corel5k photos with the embedded default model (decode, CNN, ranking of its
   everyday vocabulary) against a bare timm forward pass of the same backbone on in-memory tensors.
2. Ranking alone, per image, for vocabularies of 1k-400k GloVe words (d = 50, the real A of the GloVe
   transformation model (configs/transform.toml, trained on Corel5k) for 256 Corel5k test photos spread
   evenly over its themes, timed on the first 64), of 3M tags (--phrases: GloVe's words and pairs of everyday
   tags, embedded by wordllama, under the transformation model trained on those vectors, batches of 16), and
   of 1M/3M random 300-d vectors (random A, k = 100, batches of 8): the exact torch scan (the reference),
   the exact FAISS search (same top 10?) and, from 100k tags, the approximate search (tagrank.ranking.search),
   after it has ranked Corel5k training photos in random order exactly until it stops doing so by itself, at
   most --calibration (512 random draws for a random A, whose top tags share nothing):
   time, speed-up and recall@5/@10 against the exact scan; for the real models also the next process,
   which recalls those frequent tags (tagrank.ranking.search.FrequentTagMemory) and ranks the next training photos
   exactly until it stops by itself. GFLOP/s count the work of the form the scan
   takes, V·D(D+1)/2 (quadratic) or V·D·k (direct) multiply-adds per image, against a plain torch.mm peak
   (4096², float32) measured in the same run. --split validation uses Corel5k training photos instead (for choosing
   --probes); --ranking-only skips 1 and 3.
3. Cold start: `tagrank rank examples/cat.jpg` as a fresh process against a bare `python -c "import torch"`,
   median of 5 each, interleaved in the same run; the goal is a ratio of at most 1.5. The first, untimed
   run fills the on-disk vocabulary cache (as any user's first run does).

    python scripts/bench_rank.py --cold-start-only
    python scripts/bench_rank.py --ranking-only [--split validation] [--probes 0.03125,0.0625] [--calibration 256]
"""

from __future__ import annotations

import argparse
import glob
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from tagrank.ranking.search import CALIBRATION_PHOTOS, PROBED_SHARE, SHARE_AT, SHARE_WINDOW, TARGET_SHARE

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
SEARCHED_PHOTOS = 256
"""Photos whose A is searched, at most (Corel5k test photos, or training photos with --split validation);
the engines are timed on the first batch of them, the recall counted over all."""
RANDOM_CALIBRATION = 512
"""Random draws of A the approximate search ranks exactly first for random vectors (their top tags share
nothing, so it would otherwise go on to --calibration)."""


def spread(paths: list[str], n: int) -> list[str]:
    """``n`` of ``paths`` at an even stride."""
    return paths[::max(1, len(paths) // n)][:n]


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
    parser.add_argument("--big", default="1000000,3000000", help="sizes of random 300-d vocabularies (random A)")
    parser.add_argument("--phrases", default="3000000",
                        help="sizes of GloVe-word and everyday-tag-pair vocabularies embedded by wordllama (real A)")
    parser.add_argument("--cold-start-only", action="store_true")
    parser.add_argument("--ranking-only", action="store_true")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "bench_rank")
    parser.add_argument("--split", choices=("validation", "test"), default="test",
                        help="photos whose A is searched: Corel5k training photos (to choose settings) or test photos")
    parser.add_argument("--probes", type=lambda v: [float(x) for x in v.split(",")], default=[PROBED_SHARE],
                        help="shares of the clusters the approximate search probes (comma-separated)")
    parser.add_argument("--calibration", type=int, default=CALIBRATION_PHOTOS,
                        help="photos the approximate search ranks exactly first, at most (Corel5k training photos)")
    args = parser.parse_args()
    if args.cold_start_only:
        cold_start()
        return
    paths = sorted(glob.glob(str(args.shared / "data" / "corel5k" / "images" / "test" / "*.jpeg")))[: args.images]
    if not args.ranking_only:
        tagging(paths)
    ranking(args)
    if not args.ranking_only:
        cold_start()


def tagging(paths: list[str]) -> None:
    from bench_train import bare_forward

    from tagrank.tagger import Tagger

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


def ranking(args) -> None:
    started = time.perf_counter()
    peak = mm_peak()
    print(f"ranking time per image (torch.mm peak this run: {peak:.0f} GFLOP/s)")
    # Choosing photos (the approximate search's settings were picked on these) and reported photos apart, each
    # spread evenly over Corel5k's themes (its files go theme by theme).
    corel = args.shared / "data" / "corel5k" / "images"
    train = sorted(glob.glob(str(corel / "train" / "*.jpeg")))
    photos = {"validation": spread(train, SEARCHED_PHOTOS),
              "test": spread(sorted(glob.glob(str(corel / "test" / "*.jpeg"))), SEARCHED_PHOTOS)}
    # The approximate search first ranks photos exactly to learn their frequent tags (tagrank.ranking.search): here
    # Corel5k training photos other than the validation ones, in random order (as a user's photos would come,
    # not theme by theme).
    reference = sorted(set(train) - set(photos["validation"]))
    random.Random(0).shuffle(reference)
    # A second process (recalling the first one's frequent tags) learns from the next photos of that order.
    reference, later = reference[:args.calibration], reference[args.calibration:]
    rows = []
    for name, raw, tagger, batch, searched in ranking_cases(args):
        recheck = None
        if tagger is not None:
            factors, label_space = photo_factors(tagger, photos[args.split][:searched]), tagger.method.label_space
            calibration = (photo_factors(tagger, reference[i:i + batch]) for i in range(0, len(reference), batch))
            recheck = (photo_factors(tagger, later[i:i + batch]) for i in range(0, len(later), batch))
        else:  # random A (a separate draw for each split, and for the calibration)
            gen = torch.Generator().manual_seed(1 if args.split == "validation" else 2)
            factors, label_space = torch.randn(searched, 100, raw.shape[1], generator=gen), None
            gen = torch.Generator().manual_seed(3)
            calibration = (torch.randn(min(batch, RANDOM_CALIBRATION - i), 100, raw.shape[1], generator=gen)
                           for i in range(0, RANDOM_CALIBRATION, batch))
        rows.append(ranking_case(name, raw, label_space, factors, batch, peak, approx=len(raw) >= 100_000,
                                 probes=args.probes, calibration=calibration, recheck=recheck))
    if args.split == "test":
        write_search_section(args, rows, peak, time.perf_counter() - started)


def write_search_section(args, rows: list[list[str]], peak: float, seconds: float) -> None:
    from tagrank.evaluation.markdown import table, write_section

    import shlex

    command = " ".join(["python scripts/bench_rank.py", *map(shlex.quote, sys.argv[1:])])  # as it was run
    reading = (f"Per photo, top 10, the median of 3 calls after a warm one (torch.mm peak in this run: {peak:.0f} "
               "GFLOP/s float32). The GloVe rows rank GloVe's words (d = 50) under the transformation model trained "
               "on them (configs/transform.toml on Corel5k); the phrase rows GloVe's words and random pairs of "
               "everyday tags ('dog beach'), embedded by wordllama (d = 256), under the same recipe trained on "
               "wordllama's vectors: a real A over real label geometry, as a hashtag vocabulary is"
               + ("; random rows draw both vectors and A at random (their best tags are each draw's own, so `approx` "
                  "cannot learn frequent ones: a worst case)" if args.big else "") +
               ". `approx` first ranks Corel5k training photos exactly, in random order, until its frequent tags hold "
               f"{TARGET_SHARE:.1%} of the last {SHARE_WINDOW} photos' top {SHARE_AT}, then scores only those tags"
               + (f" and {args.probes[0]:.1%} of the clusters" if args.probes[0] else "") +
               "; the next process recalls them from disk "
               "(tagrank.ranking.search.FrequentTagMemory) and learns from the following photos. Recall is against "
               f"the exact scan over {SEARCHED_PHOTOS} Corel5k test photos. The default model's own exact search "
               "(structured, over 400k tags) is in the throughput table above.")
    header = ["vocabulary", "exact torch scan", "share of the mm peak", "exact FAISS (CPU), same top 10",
              "approx, first process: photos ranked exactly, time, frequent tags", "speed-up, recall@5 / @10",
              "next process: photos ranked exactly, time, frequent tags", "speed-up, recall@5 / @10"]
    write_section(ROOT / "BENCHMARKS.md", "search-at-scale", "### Search at scale", command, seconds, reading,
                  table(header, rows))


def ranking_cases(args):
    """(name, raw label vectors, tagger whose A ranks them or None for a random A, photos per batch, photos
    searched), one at a time (the large ones take GBs)."""
    glove = transform_tagger(args.shared, args.runs)
    words = torch.from_numpy(np.array(glove.vectors.keyed.vectors, dtype=np.float32))
    for n in (1000, 10000, 100000, 400000):
        yield f"{n // 1000}k GloVe words, d=50", words[:n], glove, 64, SEARCHED_PHOTOS
    for n in (int(v) for v in args.phrases.split(",") if v):
        # Realistic at millions of tags: GloVe's words and pairs of everyday tags ("dog beach"), as hashtag or
        # phrase vocabularies are, embedded by wordllama (d = 256) and ranked by the transformation model
        # trained on those vectors (configs/transform.toml): real A, real label geometry.
        tagger = transform_tagger(args.shared, args.runs, "wordllama")
        names = phrase_vocabulary(glove.vectors.keyed.index_to_key, n)
        vectors = torch.from_numpy(tagger.vectors.encode(names))
        yield f"{n / 1e6:g}M words and phrases, wordllama", vectors, tagger, 16, SEARCHED_PHOTOS
    gen = torch.Generator().manual_seed(0)
    for n in (int(v) for v in args.big.split(",") if v):
        yield f"{n / 1e6:g}M random vectors, d=300", torch.randn(n, 300, generator=gen), None, 8, 8


def transform_tagger(shared: Path, runs: Path, encoder: str = "glove-6b-50d"):
    """The previous transformation recipe (configs/transform.toml) trained on Corel5k with ``encoder``'s
    vectors: a real A for them. Trained here (a minute or two with cached features) unless runs/ holds it."""
    from tagrank.config import load_config
    from tagrank.labels.encoders import load_encoder
    from tagrank.tagger import Tagger
    from tagrank.training.trainer import run_training

    out = runs / ("transform_glove" if encoder == "glove-6b-50d" else f"transform_{encoder}")
    if not (out / "model.safetensors").is_file():
        run_training("corel5k", shared / "data" / "corel5k", load_config(ROOT / "configs" / "transform.toml"), out,
                     load_encoder(encoder), progress=False)
    return Tagger.load(out)


def phrase_vocabulary(words: list[str], n: int) -> list[str]:
    """``n`` tags: ``words`` (those with a letter or digit) first, then distinct pairs of everyday tags drawn
    at random (seed 0) until there are ``n``."""
    from tagrank.labels.vocab import load_vocabulary

    names = [w for w in words if any(c.isalnum() for c in w)][:n]
    tags = load_vocabulary("everyday")
    rng = np.random.default_rng(0)
    pairs: set[str] = set()
    while len(names) + len(pairs) < n:
        for a, b in rng.integers(len(tags), size=(n - len(names) - len(pairs), 2)):
            if a != b:
                pairs.add(f"{tags[a]} {tags[b]}")
    return names + sorted(pairs)[: n - len(names)]


def photo_factors(tagger, paths: list[str]) -> torch.Tensor:
    from tagrank.images.features import extract

    with torch.no_grad():
        return tagger.method.factors(torch.from_numpy(extract(tagger.backbone, paths, progress=False).features))


def timed(fn, *args, repeats: int = 3):
    """(fn's result, median seconds of ``repeats`` calls) after a warm call on two photos. The median,
    because the first full-size call of a process pays one-off costs (the allocator's first large buffers:
    the approximate search's first 64-photo batch ran ~1.8x its later ones) that a run of batches does not."""
    fn(*[a[:2] if isinstance(a, torch.Tensor) else a for a in args])  # warm (fills caches where they apply)
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn(*args)
        seconds.append(time.perf_counter() - start)
    return out, sorted(seconds)[len(seconds) // 2]


def ranking_case(name: str, raw: torch.Tensor, label_space, factors: torch.Tensor, batch: int, peak: float,
                 approx: bool, probes: list[float], calibration, recheck=None) -> list[str]:
    """Time the exact torch scan (the reference), the FAISS exact search and the approximate search on the
    first ``batch`` photos of ``factors``; the approximate search's recall over all of them. With ``recheck``
    (other calibration photos), the same for a second engine that recalls the first one's frequent tags, as
    the next process would. Returns the case's row of the section's table (approx at the first of ``probes``)."""
    from tagrank.ranking.engine import Vocabulary, staircase
    from tagrank.ranking.search import (FAISS_MAX_ELEMENTS, FaissVocabulary, cluster_index, default_clusters,
                                        make_engine, recall)

    with torch.no_grad():
        vectors = label_space(raw) if label_space is not None else raw
    timed_factors = factors[:batch]
    _, m, d = factors.shape
    scan = Vocabulary(vectors)
    (_, exact), seconds = timed(scan.top_k, timed_factors, 10, "norm")
    rest = range(batch, len(factors), batch)  # the recall's other photos
    exact = torch.cat([exact] + [scan.top_k(factors[i:i + batch], 10, "norm")[1] for i in rest])
    quadratic = len(vectors) * d * (d + 1) // 2  # the quadratic form's multiply-adds per image
    form = scan.uses_quadratic_form(timed_factors, "norm")
    width, tail = staircase(timed_factors)  # the direct product skips the columns only the tail rows read
    work = quadratic if form else len(vectors) * (m * width + len(tail) * (d - width))  # what the scan computes
    how = (f"quadratic form, V·D(D+1)/2, selected in {str(scan.dtype).removeprefix('torch.')}" if form
           else "direct, V·(D·k less the skipped zeros)")
    print(f"  {name:<28} D={d:<3} k={m:<3} batch {batch:>2}: exact {seconds / batch * 1000:8.2f} ms/image  "
          f"{2 * work * batch / seconds / 1e9:6.0f} GFLOP/s = {2 * work * batch / seconds / 1e9 / peak:.0%} of the "
          f"float32 mm peak ({how})")
    candidates = "bfloat16 candidates" if form and scan.precision() != torch.float32 else "float32"
    row = [name, f"{seconds / batch * 1000:.2f} ms", f"{2 * work * batch / seconds / 1e9 / peak:.0%} ({candidates})",
           "too large"]
    if quadratic <= FAISS_MAX_ELEMENTS:
        (_, found), faiss_seconds = timed(FaissVocabulary(vectors).top_k, timed_factors, 10, "norm")
        same = bool(torch.equal(found, exact[:batch]))
        print(f"  {'':<28} faiss exact {faiss_seconds / batch * 1000:8.2f} ms/image ({seconds / faiss_seconds:.2f}x "
              f"the torch scan's speed), same top 10: {same}")
        row[3] = f"{faiss_seconds / batch * 1000:.2f} ms, {'yes' if same else 'no'}"
    row += ["–"] * 4
    if not approx:
        return row
    start = time.perf_counter()  # clustered once, as a label index built with --clusters is
    clusters = cluster_index(torch.nn.functional.normalize(raw.float(), dim=1).numpy(), default_clusters(len(raw)))
    built = time.perf_counter() - start
    runs = [(calibration, f"clustering: {built:.0f} s, once per index; ")]
    if recheck is not None:
        runs.append((recheck, "the next process, recalling them: "))
    with tempfile.TemporaryDirectory() as memory:  # the frequent tags the first engine keeps for the second
        for run, (photos, what) in enumerate(runs):
            engine = make_engine(vectors, "approx", clusters, raw, label_space, memory_key=lambda: "bench",
                                 memory_dir=memory)
            learned = learn(engine, photos)
            share = "" if engine.share is None else f", the last {len(engine.shares)}'s top 10 {engine.share:.1%} frequent"
            for fraction in probes:
                engine.probes = max(0, round(len(engine.centroids) * fraction))
                (_, found), approx_seconds = timed(engine.top_k, timed_factors, 10, "norm")
                found = torch.cat([found] + [engine.top_k(factors[i:i + batch], 10, "norm")[1] for i in rest])
                at5, at10 = recall(found, exact, 5), recall(found, exact, 10)
                print(f"  {'':<28} approx {engine.probes}/{len(engine.centroids)} clusters + {len(engine.frequent):,} "
                      f"frequent tags: {approx_seconds / batch * 1000:8.2f} ms/image, {seconds / approx_seconds:5.1f}x "
                      f"faster, recall@5 {at5:.3f} @10 {at10:.3f} over "
                      f"{len(factors)} photos ({what}{engine.calibrated} photos ranked exactly first: {learned:.0f} s{share})")
                if fraction == probes[0]:
                    row[4 + 2 * run:6 + 2 * run] = [f"{engine.calibrated:,}, {learned:.0f} s, {len(engine.frequent):,}",
                                                    f"{seconds / approx_seconds:.1f}×, {at5:.3f} / {at10:.3f}"]
    return row


def learn(engine, calibration) -> float:
    """Rank calibration photos exactly until the engine stops by itself (or they run out); seconds taken."""
    start = time.perf_counter()
    calibration = iter(calibration)
    while engine.calibrating:  # checked first: a batch is made only when it will be ranked
        reference = next(calibration, None)
        if reference is None:
            break
        with torch.no_grad():  # ranked exactly: their top tags become the frequent ones
            engine.calibrate(reference, 10, "norm")
    engine.calibration_photos = engine.calibrated  # (the random cases stop where their draws end)
    return time.perf_counter() - start


CUSTOM_TAGS = ["latte art", "sourdough loaf", "golden retriever puppy", "sunset over the harbour", "vintage bicycle",
               "street food stall", "wedding bouquet", "mountain hut", "rainy window", "cat on a windowsill",
               "neon sign", "farmers market", "rock climbing", "paper lantern", "autumn leaves", "tide pool",
               "birthday cake candles", "city skyline at night", "hiking boots", "homemade pasta"]
"""A user's 20-tag vocabulary, none of it in the shipped encoder table (the encoder runs for it)."""


def cold_start(repeats: int = 5) -> None:
    """Median wall time of `tagrank rank examples/cat.jpg` (default vocabulary, and a 20-tag custom one) and of
    `python -c "import torch"`, interleaved."""
    import statistics

    photo = ROOT / "examples" / "cat.jpg"
    custom = Path(tempfile.mkdtemp()) / "custom.txt"
    custom.write_text("\n".join(CUSTOM_TAGS) + "\n", encoding="utf-8")
    rank = [sys.executable, "-m", "tagrank.cli", "rank", str(photo), "--no-progress"]
    commands = {"import torch": [sys.executable, "-c", "import torch"], "tagrank rank": rank,
                "tagrank rank --vocab (20 new tags)": rank + ["--vocab", str(custom)]}
    subprocess.run(commands["tagrank rank"], check=True, capture_output=True)  # fills the vocabulary cache
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(repeats):
        for name, command in commands.items():
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            times[name].append(time.perf_counter() - start)
    torch_s, rank_s = statistics.median(times["import torch"]), statistics.median(times["tagrank rank"])
    custom_s = statistics.median(times["tagrank rank --vocab (20 new tags)"])
    line = (f"`tagrank rank examples/cat.jpg` {rank_s:.2f} s against `python -c 'import torch'` {torch_s:.2f} s: "
            f"ratio **{rank_s / torch_s:.2f}** (goal ≤ 1.5); with a 20-tag vocabulary outside the encoder table "
            f"{custom_s:.2f} s ({custom_s - rank_s:+.2f} s, goal ≤ 0.5)")
    print(line)
    from tagrank.evaluation.markdown import write_section

    reading = (f"A fresh process each time, median of {repeats}, the commands interleaved; a first untimed run fills "
               "the disk caches (the default vocabulary's label space, each tag's usual best), as any user's first "
               "run does.")
    write_section(ROOT / "BENCHMARKS.md", "cold-start", "### Cold start", "python scripts/bench_rank.py "
                  "--cold-start-only", sum(map(sum, times.values())), reading, line + ".")


if __name__ == "__main__":
    main()
