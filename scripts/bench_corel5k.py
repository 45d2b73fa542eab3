"""The paper's comparison on Corel5k, in one run, written to BENCHMARKS.md.

    python scripts/bench_corel5k.py [--shared ../shared] [--runs runs/bench] [--jobs 2] [--quick]

From ../shared/data/corel5k (4,500 training / 499 test photos, 374 words):
  1. frozen backbone features as the configs ask for them, extracted once (the feature cache);
  2. supervised: transform, fast0tag, warp and bce trained with configs/<method>.toml (the defaults
     tuned on the validation split by scripts/tune_corel5k.py), and the paper's transformation model
     as published (configs/paper.toml), evaluated on all 374 words at K = 3 and 5 (per-word =
     per-class P/R/F1, overall P/R/F1, mAP, N+), plus the prior;
  3. zero-shot: the 50 words of zsl_unseen.txt held out of training; transform and fast0tag (the
     methods that rank unseen words), ConSE and the prior, in the zsl and gzsl protocols;
  4. the effect of k (the paper's Figure 8): transform with k = 10, 25, 50, 100;
  5. the voting committee (the paper's Table 5): each row of A ranks the words by |a_r·w|; tags chosen
     by the most rows' top-1/3/5 against the full ‖Aw‖ ranking.
Everything is seeded (configs' seed 0); BENCHMARKS.md, bench_k.png are regenerated, never hand-edited.
"""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from tagrank.evaluation.markdown import pct, provenance, sections, table

ROOT = Path(__file__).resolve().parent.parent
K_SWEEP = (10, 25, 50, 100)
CONFIGS = ("transform", "paper", "fast0tag", "warp", "bce")  # configs/<name>.toml trained on the supervised split


def metric_rows(report, ks=(3, 5)) -> list[list]:
    rows = []
    for row in report.rows:
        if row.metrics is None:
            rows.append([row.name] + ["n/a"] * (1 + 7 * len(ks)) + [row.note])
            continue
        cells = [row.name, pct(row.metrics.mAP)]
        for k in ks:
            t = row.metrics.top_k[k]
            cells += [pct(t.CP), pct(t.CR), pct(t.CF1), t.n_plus, pct(t.OP), pct(t.OR), pct(t.OF1)]
        rows.append(cells + [row.note])
    return rows


def metric_header(ks=(3, 5)) -> list[str]:
    head = ["method", "mAP"]
    for k in ks:
        head += [f"P@{k}", f"R@{k}", f"F1@{k}", f"N+@{k}", f"O-P@{k}", f"O-R@{k}", f"O-F1@{k}"]
    return head + ["note"]


def metrics_by_run(report) -> dict[str, object]:
    """Each row's metrics by run name (``zsl_transform (transform)`` -> ``zsl_transform``)."""
    return {row.name.split(" (")[0]: row.metrics for row in report.rows if row.metrics is not None}


def goal_lines(supervised, zsl) -> list[str]:
    """Where issue 6's goals stand, read off this run's tables (never written by hand)."""
    sup, zero = metrics_by_run(supervised), metrics_by_run(zsl)
    t = sup["transform"].top_k[5]
    best = max(("warp", "bce", "fast0tag"), key=lambda n: sup[n].top_k[5].CF1)
    b = sup[best].top_k[5]
    zt, zf, zc = zero["zsl_transform"], zero["zsl_fast0tag"], zero["conse"]
    verdict = lambda ok: "met" if ok else "not met"  # noqa: E731
    return [
        f"- Supervised, 5 tags: transform per-word F1 {pct(t.CF1)}, N+ {t.n_plus} against the goal of 48 and 200 "
        f"({verdict(t.CF1 >= 0.48 and t.n_plus >= 200)}); the best baseline, {best}, has {pct(b.CF1)} and {b.n_plus} "
        f"(transform {'ahead' if t.CF1 > b.CF1 else 'behind'} by {abs(100 * (t.CF1 - b.CF1)):.1f}).",
        f"- Zero-shot, 50 unseen words: transform mAP {pct(zt.mAP)}, F1@5 {pct(zt.top_k[5].CF1)}; Fast0Tag "
        f"{pct(zf.mAP)}, {pct(zf.top_k[5].CF1)}; ConSE {pct(zc.mAP)}, {pct(zc.top_k[5].CF1)} "
        f"({verdict(max(zf.mAP, zc.mAP) < zt.mAP and max(zf.top_k[5].CF1, zc.top_k[5].CF1) < zt.top_k[5].CF1)}: "
        "transform above both on both).",
    ]


def bench_config(name: str):
    from tagrank.config import load_config

    return load_config(ROOT / "configs" / f"{name}.toml")


def tuning_rows() -> list[list]:
    """The trials of scripts/tune_corel5k.py (validation split), as recorded in benchmarks/corel5k_tuning.jsonl."""
    import json

    path = ROOT / "benchmarks" / "corel5k_tuning.jsonl"
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        e = json.loads(line)
        changes = ", ".join(f"{k}={json.dumps(v)}" for k, v in e["settings"].items()) or "(defaults)"
        rows.append([e["name"], changes, pct(e["P@5"]), pct(e["R@5"]), pct(e["F1@5"]), e["N+@5"], pct(e["O-F1@5"]),
                     pct(e["mAP"]), e["best_epoch"], f"{e['seconds']:.0f}"])
    return rows


def train(config_name: str, root: Path, out: Path, unseen: Path | None = None, k: int | None = None,
          quick: bool = False, threads: int | None = None) -> float:
    """Train configs/<config_name>.toml into ``out``; returns the wall time in seconds."""
    from tagrank.training.trainer import run_training
    from tagrank.labels.encoders.word_vectors import WordVectors

    if threads is not None:
        torch.set_num_threads(threads)
    config = bench_config(config_name)
    if unseen is not None:
        config.data.unseen = str(unseen)
    if k is not None:
        config.method_options.k = k
    if quick:
        config.train.epochs = 3
    if out.exists():
        shutil.rmtree(out)
    start = time.perf_counter()
    run_training("corel5k", root, config, out, WordVectors.default(), progress=False)
    return time.perf_counter() - start


def voting(model_dir: Path, root: Path, cache_dir) -> list[list]:
    """The paper's Table 5: committee of the k rows of A (top-N votes) against the full ranking."""
    from tagrank.images.datasets import load_dataset
    from tagrank.images.features import FeatureCache
    from tagrank.evaluation.metrics import evaluate_scores
    from tagrank.tagger import Tagger

    tagger = Tagger.load(model_dir)
    test = load_dataset("corel5k", root, "test")
    words = test.labels
    features = torch.from_numpy(FeatureCache(tagger.backbone, cache_dir).get(test.paths, progress=False).features)
    embedded = tagger.vectors.embed(words)
    rankable = [i for i, e in enumerate(embedded.entries) if e.in_vocab]
    truth = test.matrix[:, rankable]
    with torch.no_grad():
        vectors = tagger.method.label_space(torch.from_numpy(embedded.matrix))
        A = tagger.method.matrices(features)  # (N, k, d)
        per_row = torch.einsum("nkd,vd->nkv", A, vectors).abs()  # each row a_r scores every word
        full = -torch.linalg.vector_norm(per_row, dim=1)  # relevance: -‖A w‖ over the same projections
    rows = []
    full_metrics = evaluate_scores(full.numpy(), truth, [words[i] for i in rankable], ks=(3, 5))
    for n in (1, 3, 5):
        top = per_row.topk(n, dim=2, largest=False).indices  # (N, k, n)
        votes = torch.zeros_like(full)
        votes.scatter_add_(1, top.reshape(len(A), -1), torch.ones(top.reshape(len(A), -1).shape))
        # most votes first; ties broken by the full ranking (a committee cannot split them itself)
        ranked = votes + 1e-3 * torch.sigmoid(full)
        m = evaluate_scores(ranked.numpy(), truth, [words[i] for i in rankable], ks=(3, 5))
        rows.append([f"top-{n} voting", pct(m.top_k[3].CF1), pct(m.top_k[3].OF1), pct(m.top_k[5].CF1),
                     pct(m.top_k[5].OF1), m.top_k[5].n_plus])
    rows.append(["full ‖Aw‖ ranking", pct(full_metrics.top_k[3].CF1), pct(full_metrics.top_k[3].OF1),
                 pct(full_metrics.top_k[5].CF1), pct(full_metrics.top_k[5].OF1), full_metrics.top_k[5].n_plus])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "bench")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--jobs", type=int, default=2, help="training runs side by side (processes)")
    parser.add_argument("--quick", action="store_true", help="3 epochs each: checks the script, not the numbers")
    parser.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    args = parser.parse_args()
    from tagrank.images.backbone import Backbone
    from tagrank.images.datasets import load_dataset
    from tagrank.evaluation.protocols import evaluate
    from tagrank.images.features import FeatureCache

    started = time.perf_counter()
    root = args.shared / "data" / "corel5k"
    unseen = root / "zsl_unseen.txt"
    cache = str(args.cache_dir) if args.cache_dir else None
    walls: dict[str, float] = {}

    t = time.perf_counter()
    train_paths, test_paths = (load_dataset("corel5k", root, split).paths for split in ("train", "test"))
    backbones: dict[str, bool] = {}  # backbone name -> whether some config trains on mirrored photos too
    for name in CONFIGS:
        c = bench_config(name).backbone
        backbones[c.name] = backbones.get(c.name, False) or c.flip_features
    for name, flip in backbones.items():
        FeatureCache(Backbone(name), cache, flip=flip).get(train_paths, progress=False)
        FeatureCache(Backbone(name), cache).get(test_paths, progress=False)  # mirrored photos only train
    walls[f"features (4,999 photos; {', '.join(backbones)}; cached after the first run)"] = time.perf_counter() - t

    # Every training run, side by side in --jobs processes (small heads use one core better than two);
    # the costliest first so that the pool ends together.
    tuned_k = bench_config("transform").method_options.k
    jobs = [(f"k{k}", "transform", None, k) for k in sorted(K_SWEEP, reverse=True) if k != tuned_k]
    jobs += [("transform", "transform", None, None), ("transform_paper", "paper", None, None),
             ("zsl_transform", "transform", unseen, None), ("warp", "warp", None, None),
             ("fast0tag", "fast0tag", None, None), ("zsl_fast0tag", "fast0tag", unseen, None), ("bce", "bce", None, None)]
    threads = max(1, torch.get_num_threads() // args.jobs)
    t = time.perf_counter()
    # spawn, not fork: a child forked after this process ran torch's thread pool (feature
    # extraction) can hang when it starts threads of its own
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {run: pool.submit(train, name, root, args.runs / run, split, k, args.quick, threads)
                   for run, name, split, k in jobs}
        for run, name, split, k in jobs:
            walls[f"train {run} (configs/{name}.toml{f', k={k}' if k else ''}{', zero-shot split' if split else ''})"] = \
                futures[run].result()
    walls[f"all training above, {args.jobs} side by side"] = time.perf_counter() - t

    supervised = {run: args.runs / run for run in ("transform", "transform_paper", "fast0tag", "warp", "bce")}
    t = time.perf_counter()
    sup_report = evaluate("corel5k", root, list(supervised.values()), method="conse", cache_dir=cache, progress=False)
    walls["evaluate supervised"] = time.perf_counter() - t

    zsl_models = [args.runs / "zsl_transform", args.runs / "zsl_fast0tag"]
    t = time.perf_counter()
    zsl = evaluate("corel5k", root, zsl_models, method="conse", protocol="zsl", unseen=unseen, cache_dir=cache,
                   progress=False)
    gzsl = evaluate("corel5k", root, zsl_models, method="conse", protocol="gzsl", unseen=unseen, cache_dir=cache,
                    progress=False)
    walls["evaluate zero-shot"] = time.perf_counter() - t

    sweep = []
    for k in K_SWEEP:
        directory = supervised["transform"] if k == tuned_k else args.runs / f"k{k}"
        m = evaluate("corel5k", root, [directory], cache_dir=cache, progress=False).rows[1].metrics
        sweep.append((k, m))
    committee = voting(supervised["transform"], root, cache)
    total = time.perf_counter() - started

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot([k for k, _ in sweep], [100 * m.top_k[5].CF1 for _, m in sweep], marker="o", label="per-word F1@5")
    ax.plot([k for k, _ in sweep], [100 * m.top_k[5].OF1 for _, m in sweep], marker="o", label="overall F1@5")
    ax.plot([k for k, _ in sweep], [100 * m.mAP for _, m in sweep], marker="o", label="mAP")
    ax.set_xlabel("k (rows of A)")
    ax.set_ylabel("%")
    ax.set_title("Corel5k: effect of k (transform)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out.parent / "bench_k.png", dpi=120)
    plt.close(fig)

    feature_note = "; ".join(f"{Backbone(name).signature}{' and mirrored' if flip else ''}"
                             for name, flip in backbones.items())
    command = "python scripts/bench_corel5k.py" + (" --quick" if args.quick else "")
    text = f"""# Benchmarks: Corel5k

{provenance(command, total)}

One run, seed 0 everywhere (`configs/*.toml`), frozen ImageNet EfficientNet features ({feature_note}), GloVe 6B
50-d word vectors; {args.jobs} training runs side by side with {threads} torch threads each.

Conventions (see `tagrank/evaluation/metrics.py`): per-word P/R are the means over the test words with a positive
(the Corel5k convention, = C-P/C-R), F1 = 2PR/(P+R) of those means, N+ = words with recall > 0; overall
O-P/O-R/O-F1 pool all predictions; mAP is class-wise with per-image standardised scores for the
word-vector methods. Published rows use 5 tags per image: JEC 27/32/F1 29.3/N+ 139 · TagProp
33/42/37.0/160 · CNN-R 32/41.3/36.1/166 · 2PKNN+ML 44/46/45.0/191 · AWD-IKNN 42/55/47.7/198.

## Where the goals stand

{chr(10).join(goal_lines(sup_report, zsl))}

## Supervised: all 374 words

{table(metric_header(), metric_rows(sup_report))}

## Zero-shot: 50 unseen words (`zsl_unseen.txt`) held out of training

WARP and BCE score only their training labels, so they cannot rank unseen words (no row).

ZSL (rank the 50 unseen words only; {zsl.n_without_positive} of {zsl.n_images} test images have no unseen
word and are kept, the inclusive protocol):

{table(metric_header(), metric_rows(zsl))}

GZSL (rank all 374 words):

{table(metric_header(), metric_rows(gzsl))}

## Effect of k (the paper's Figure 8)

![k sweep](bench_k.png)

{table(["k", "mAP", "per-word P@5", "per-word R@5", "per-word F1@5", "N+@5", "overall F1@5"],
       [[k, pct(m.mAP), pct(m.top_k[5].CP), pct(m.top_k[5].CR), pct(m.top_k[5].CF1), m.top_k[5].n_plus,
         pct(m.top_k[5].OF1)] for k, m in sweep])}

## Voting committee (the paper's Table 5)

Each of the k rows a_r of A ranks the words by |a_r·w|; a word's votes are the rows that put it in their
top-N. Tags are chosen by votes (ties broken by the full ranking) and compared with the full ‖Aw‖ ranking.

{table(["ranking", "per-word F1@3", "overall F1@3", "per-word F1@5", "overall F1@5", "N+@5"], committee)}

## Wall times

Training runs overlap (`--jobs`), so their seconds add up to more than the total.

{table(["step", "seconds"], [[name, f"{seconds:.0f}"] for name, seconds in walls.items()])}

## What was tried

Chosen on the validation split only: `scripts/tune_corel5k.py` trains each trial on 90% of the
training photos and scores it on the other 10% (450 photos; the split `tagrank train` holds out for
its best-epoch choice), with this benchmark's metrics. A trial changes the listed config fields on
top of the dataclass defaults, which are the paper's numbers for the transformation model. The
test split above was never used to choose anything. The tuned configs are `configs/<method>.toml`;
`configs/paper.toml` keeps the paper's setup as the reference row.

{table(["trial", "changes", "P@5", "R@5", "F1@5", "N+@5", "O-F1@5", "mAP", "best epoch", "seconds"],
       tuning_rows())}
"""
    # Other benchmarks' sections (scripts/bench_open_world.py) are kept as they are.
    kept = sections(args.out.read_text(encoding="utf-8")) if args.out.is_file() else {}
    args.out.write_text(text + "".join("\n" + body for body in kept.values()), encoding="utf-8")
    print(f"wrote {args.out} in {total / 60:.1f} min")


if __name__ == "__main__":
    sys.exit(main())
