"""The open-world benchmark, in one run, written to its own section of BENCHMARKS.md.

    python scripts/bench_open_world.py [--shared ../shared] [--runs runs/bench_ow] [--jobs 2]

From ../shared/data (seed 0 everywhere):
  1. Tiny ImageNet, zero-shot: the open-world transformation model (configs/open_world.toml) and Fast0Tag
     trained on the mixture of Corel5k and Tiny ImageNet *without* the 50 classes of zsl_unseen.txt (and
     Corel5k's 50 unseen words); top-1/top-5 on the validation photos of the unseen classes, ranking the
     50 unseen names (ZSL) and all 202 (GZSL); ConSE and the label prior beside them.
  2. Tiny ImageNet, the embedded default model over all 202 names on all 10,100 validation photos.
  3. Corel5k supervised (test split, 374 words, 5 tags): the open-world model trained on Corel5k alone and
     the embedded default model beside the previous transformation recipe, WARP, BCE, Fast0Tag, ConSE.
  4. Corel5k zero-shot (50 unseen words): the zero-shot models of 1., the open-world recipe trained on
     Corel5k's seen words alone with MiniLM label vectors (chosen on validation for this split), the previous
     recipe trained without the unseen words, ConSE with both label encoders.
  5. Hub share: the share of all top-5 slots that the 10 most frequent tags take when the default model
     ranks the everyday vocabulary over the Tiny ImageNet validation and Corel5k test photos; the
     default's top 5 for examples/cat.jpg and examples/coffee.jpg.
The validation trials behind the choices are in benchmarks/open_world_tuning.jsonl
(scripts/tune_open_world.py); no choice was made on the photos scored here.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from tagrank.evaluation.markdown import pct, provenance, replace_section, table

ROOT = Path(__file__).resolve().parent.parent
ENCODER = "wordllama"
SECTION = "open-world"


def fastest_runtime() -> str:
    """The CNN's fastest runtime installed here (tagrank.images.runtimes; torch without one): it extracts every
    feature of the run, about 3x faster on a CPU, cached apart from torch's."""
    from tagrank.images.runtimes import choose_runtime

    return choose_runtime("auto", photos=1 << 30)


def configure(name: str, shared: Path, zero_shot: bool, mixture: bool, settings: dict | None = None):
    """configs/NAME.toml, on the mixture (Corel5k + Tiny ImageNet) or Corel5k alone, splits held out or not."""
    from tagrank.config import SourceConfig, load_config

    config = load_config(ROOT / "configs" / f"{name}.toml")
    data = shared / "data"
    corel = SourceConfig("corel5k", str(data / "corel5k"), unseen=str(data / "corel5k" / "zsl_unseen.txt"))
    tiny = SourceConfig("tinyimagenet", str(data / "tiny-imagenet"), unseen=str(data / "tiny-imagenet" / "zsl_unseen.txt"))
    config.data.sources = [corel, tiny] if mixture else [corel]
    for source in config.data.sources:
        source.unseen = source.unseen if zero_shot else None
    # No mirrored features: extracting them for the Tiny ImageNet photos would double the benchmark's time.
    config.backbone.flip_features = False
    config.backbone.runtime = fastest_runtime()
    for key, value in (settings or {}).items():
        table_name, field = key.split(".")
        setattr(config.method_options if table_name == "method" else getattr(config, table_name), field, value)
    return config


# (run, config, zero-shot split?, mixture?, encoder, settings)
RUNS = [
    ("open_world_zsl", "open_world", True, True, ENCODER, {}),
    ("fast0tag_zsl", "fast0tag", True, True, ENCODER, {"backbone.name": "lite0"}),  # Lite2 on Tiny ImageNet: too slow here
    ("previous_transform_zsl", "transform", True, False, "glove-6b-50d", {}),
    # Corel5k alone is a fifth of the mixture: twice the epochs (validation: Corel F1@5 34.5 -> 36.8)
    ("open_world_corel5k", "open_world", False, False, ENCODER, {"train.epochs": 40}),
    # Corel5k's zero-shot split: its seen words alone, MiniLM label vectors (validation: Corel ZSL mAP/F1@5
    # 20.1/17.2 against Fast0Tag's 18.4/14.1; wordllama on the mixture 12.7/9.1)
    ("open_world_corel5k_zsl", "open_world", True, False, "minilm", {}),
    ("previous_transform", "transform", False, False, "glove-6b-50d", {}),
    ("warp", "warp", False, False, ENCODER, {}),
    ("bce", "bce", False, False, ENCODER, {}),
    ("fast0tag", "fast0tag", False, False, ENCODER, {}),
]
LABELS = {
    "open_world_zsl": "open world (transform + backbone block)", "fast0tag_zsl": "fast0tag",
    "previous_transform_zsl": "previous transform (configs/transform.toml, GloVe-50)",
    "open_world_corel5k": "open world, trained on Corel5k alone (40 epochs)", "default": "open world, the embedded default model",
    "open_world_corel5k_zsl": "open world, Corel5k alone, MiniLM labels",
    "previous_transform": "previous transform (configs/transform.toml, GloVe-50)", "warp": "warp", "bce": "bce",
    "fast0tag": "fast0tag", "conse": f"ConSE ({ENCODER})", "conse_minilm": "ConSE (minilm)",
}


def train_run(name: str, config_name: str, zero_shot: bool, mixture: bool, encoder: str, settings: dict,
              shared: str, runs: str) -> tuple[str, float]:
    from tagrank.labels.encoders import load_encoder
    from tagrank.training.trainer import run_training

    torch.set_num_threads(1)  # runs side by side, one core each
    out = Path(runs) / name
    if out.exists():
        shutil.rmtree(out)
    started = time.perf_counter()
    run_training("mixture", None, configure(config_name, Path(shared), zero_shot, mixture, settings), out,
                 load_encoder(encoder), progress=False)
    return name, time.perf_counter() - started


def extract_features(shared: Path) -> dict[str, float]:
    """Fill the feature cache once, before runs train side by side (they would race to write it)."""
    from tagrank.images.backbone import Backbone
    from tagrank.images.datasets import load_dataset
    from tagrank.images.features import FeatureCache

    corel = load_dataset("corel5k", shared / "data" / "corel5k", "all").paths
    tiny = load_dataset("tinyimagenet", shared / "data" / "tiny-imagenet", "all").paths
    scored = (load_dataset("tinyimagenet", shared / "data" / "tiny-imagenet", "test").paths
              + load_dataset("corel5k", shared / "data" / "corel5k", "test").paths)
    walls, runtime = {}, fastest_runtime()
    # Lite2: the BCE/Fast0Tag configs on Corel5k; the whole view: the default model's, on the photos it is scored on
    from tagrank.tagger import default_description

    default_view = default_description()["backbone"]["name"]
    for backbone, paths in (("lite0", corel + tiny), ("lite2", corel), (default_view, scored)):
        started = time.perf_counter()
        FeatureCache(Backbone(backbone), runtime=runtime).get(paths, progress=False)
        walls[f"features {backbone} on {runtime} ({len(paths)} photos, cached ones skipped)"] = \
            time.perf_counter() - started
    return walls


def tiny_rows(shared: Path, runs: Path) -> tuple[list[list], list[list], dict]:
    from tagrank.images.datasets import load_dataset, read_tag_list
    from tagrank.evaluation.protocols import label_accuracy
    from tagrank.evaluation.metrics import top_k_accuracy
    from tagrank.tagger import Tagger

    root = shared / "data" / "tiny-imagenet"
    val = load_dataset("tinyimagenet", root, "test")
    train = load_dataset("tinyimagenet", root, "train")
    unseen = val.resolve_aliases(read_tag_list(root / "zsl_unseen.txt"))
    seen = [t for t in train.labels if t not in unseen]
    zsl_rows, figures = [], {}
    taggers = [(LABELS["open_world_zsl"], Tagger.load(runs / "open_world_zsl")),
               (LABELS["fast0tag_zsl"], Tagger.load(runs / "fast0tag_zsl")),
               (f"ConSE ({ENCODER})", Tagger.load(method="conse", vectors=ENCODER))]
    for name, tagger in taggers:
        zsl = label_accuracy(tagger, val, unseen, runtime=fastest_runtime())
        gzsl = label_accuracy(tagger, val, val.labels, photos_of=unseen, runtime=fastest_runtime())
        figures[name] = {"zsl": zsl, "gzsl": gzsl}
        zsl_rows.append([name, pct(zsl[1]), pct(zsl[5]), pct(gzsl[1]), pct(gzsl[5])])
    # The prior: labels by training frequency among the seen classes (the unseen ones never occur: ties, by index).
    unseen_photos = val.subset([i for i in range(len(val)) if set(val.tags_of(i)) & set(unseen)])
    frequency = train.select_labels(seen).matrix.mean(axis=0)
    prior = {t: f for t, f in zip(seen, frequency)}
    for labels, key in ((unseen, "zsl"), (val.labels, "gzsl")):
        scores = torch.tensor([[prior.get(t, 0.0) for t in labels]]).expand(len(unseen_photos), -1).numpy()
        truth = unseen_photos.select_labels(labels).matrix.argmax(axis=1)
        figures.setdefault("prior", {})[key] = top_k_accuracy(scores, truth)
    zsl_rows.append(["prior (training frequency)", *(pct(figures["prior"][k][n]) for k in ("zsl", "gzsl") for n in (1, 5))])
    figures["unseen photos"] = len(unseen_photos)
    default_rows = []
    for name, tagger in (("open world, the embedded default model", Tagger.load()),
                         (f"ConSE ({ENCODER})", taggers[2][1])):
        acc = label_accuracy(tagger, val, val.labels, runtime=fastest_runtime())
        figures.setdefault("all 202", {})[name] = acc
        default_rows.append([name, pct(acc[1]), pct(acc[5])])
    return zsl_rows, default_rows, figures


def corel_reports(shared: Path, runs: Path) -> tuple[object, object]:
    from tagrank.evaluation.protocols import evaluate

    from tagrank.tagger import DEFAULT_MODEL

    root = shared / "data" / "corel5k"

    supervised = evaluate("corel5k", root, [runs / n for n in ("open_world_corel5k", "previous_transform", "warp", "bce",
                                                                "fast0tag")] + [DEFAULT_MODEL], progress=False,
                          runtime=fastest_runtime())
    zsl = evaluate("corel5k", root, [runs / n for n in ("open_world_zsl", "open_world_corel5k_zsl", "fast0tag_zsl",
                                                         "previous_transform_zsl")],
                   protocol="zsl", unseen=root / "zsl_unseen.txt", progress=False, runtime=fastest_runtime())
    for report, protocol, encoders in ((supervised, "conventional", [ENCODER]), (zsl, "zsl", [ENCODER, "minilm"])):
        for row in report.rows:
            row.name = LABELS.get(row.name.split(" (")[0], row.name)
        for encoder in encoders:
            conse = evaluate("corel5k", root, method="conse", vectors=encoder, protocol=protocol,
                             unseen=root / "zsl_unseen.txt" if protocol == "zsl" else None, progress=False,
                             runtime=fastest_runtime())
            for row in conse.rows[1:]:  # after the prior row
                row.name = f"ConSE ({encoder})"
                report.rows.append(row)
    return supervised, zsl


def corel_table(report) -> str:
    rows = []
    for row in report.rows:
        if row.metrics is None:
            continue
        t = row.metrics.top_k[5]
        rows.append([row.name, pct(t.CP), pct(t.CR), pct(t.CF1), t.n_plus, pct(row.metrics.mAP), pct(t.OF1)])
    return table(["method", "per-word P@5", "per-word R@5", "per-word F1@5", "N+@5", "mAP", "overall F1@5"], rows)


def by_name(report, name: str):
    return next(r.metrics for r in report.rows if r.name == name and r.metrics is not None)


def hubs_and_examples(shared: Path) -> tuple[float, list, dict]:
    from tagrank.images.datasets import load_dataset
    from tagrank.evaluation.protocols import vocabulary_hub_share
    from tagrank.tagger import Tagger

    tagger = Tagger.load()
    photos = (load_dataset("tinyimagenet", shared / "data" / "tiny-imagenet", "test").paths
              + load_dataset("corel5k", shared / "data" / "corel5k", "test").paths)
    share, hubs = vocabulary_hub_share(tagger, photos, runtime=fastest_runtime())
    examples = {Path(r["image"]).name: [t["tag"] for t in r["tags"]]
                for r in tagger.rank([ROOT / "examples" / "cat.jpg", ROOT / "examples" / "coffee.jpg"], top=10).results}
    return share, hubs, examples


def goal_lines(figures: dict, supervised, zsl, share: float, examples: dict, total: float) -> list[str]:
    ow, conse = figures[LABELS["open_world_zsl"]], figures[f"ConSE ({ENCODER})"]
    beats_conse = ow["zsl"][1] > conse["zsl"][1] and ow["zsl"][5] > conse["zsl"][5]
    sup = {n: by_name(supervised, LABELS[n]).top_k[5].CF1 for n in ("open_world_corel5k", "warp", "bce")}
    sup["default"] = by_name(supervised, LABELS["default"]).top_k[5].CF1
    z = {n: by_name(zsl, LABELS[n]) for n in ("open_world_zsl", "open_world_corel5k_zsl", "previous_transform_zsl",
                                              "fast0tag_zsl", "conse", "conse_minilm")}

    def above_baselines(model) -> bool:
        return all(model.mAP > m.mAP and model.top_k[5].CF1 > m.top_k[5].CF1
                   for m in (z["fast0tag_zsl"], z["conse"], z["conse_minilm"]))

    def figures_of(name: str) -> str:
        return f"{pct(z[name].mAP)}/{pct(z[name].top_k[5].CF1)}"

    zsl_ok = above_baselines(z["open_world_corel5k_zsl"]) or above_baselines(z["open_world_zsl"])
    paper_zsl_ok = above_baselines(z["previous_transform_zsl"])
    cat, coffee = examples.get("cat.jpg", []), examples.get("coffee.jpg", [])
    cat_ok = "cat" in cat[:3] and {"Egyptian cat", "tabby"} & set(cat[:3]) and {"animal", "pet"} & set(cat[:10])
    coffee_ok = coffee[:1] in (["coffee"], ["espresso"]) and "cup" in coffee[:5]
    best_sup = max(sup["open_world_corel5k"], sup["default"])
    return [
        f"- Tiny ImageNet ZSL: {'met' if beats_conse else 'not met'} — open world top-1/top-5 "
        f"{pct(ow['zsl'][1])}/{pct(ow['zsl'][5])} against ConSE {pct(conse['zsl'][1])}/{pct(conse['zsl'][5])}.",
        f"- Corel5k supervised per-word F1@5: {'met' if best_sup > max(sup['warp'], sup['bce']) else 'not met'} — "
        f"open world {pct(sup['open_world_corel5k'])} (Corel5k alone), {pct(sup['default'])} (the default model) "
        f"against WARP {pct(sup['warp'])} and BCE {pct(sup['bce'])}.",
        f"- Corel5k zero-shot: {'met' if zsl_ok else 'not met'} — open world mAP/F1@5 "
        f"{figures_of('open_world_corel5k_zsl')} (Corel5k alone, MiniLM labels), {figures_of('open_world_zsl')} "
        f"(the default's recipe: the mixture, wordllama) against Fast0Tag {figures_of('fast0tag_zsl')} and ConSE "
        f"{figures_of('conse')} (wordllama), {figures_of('conse_minilm')} (MiniLM); the paper's transformation model "
        f"without the block (configs/transform.toml, GloVe-50, Corel5k alone) {figures_of('previous_transform_zsl')}, "
        f"{'above' if paper_zsl_ok else 'not above'} all three.",
        f"- Hub share {'≤' if share <= 0.05 else '>'} 5 %: {pct(share)} %.",
        f"- examples/cat.jpg: 'cat' in the top 3 beside 'Egyptian cat' or 'tabby', and 'animal' or 'pet' in the top "
        f"10: {'met' if cat_ok else 'not met'} ({', '.join(cat)}).",
        f"- examples/coffee.jpg: 'coffee' or 'espresso' first and 'cup' in the top 5: "
        f"{'met' if coffee_ok else 'not met'} ({', '.join(coffee)}).",
        f"- Wall time of this run: {total / 60:.1f} min (≤ 40 min with a cold feature cache is the goal; the "
        "feature rows below say how much of it was extraction).",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "bench_ow")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    args = parser.parse_args()
    started = time.perf_counter()
    walls = extract_features(args.shared)
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(train_run, *run, str(args.shared), str(args.runs)) for run in RUNS]
        for future in futures:
            name, seconds = future.result()
            walls[f"train {name}"] = seconds
            print(f"trained {name} in {seconds:.0f} s", flush=True)
    step = time.perf_counter()
    zsl_rows, default_rows, figures = tiny_rows(args.shared, args.runs)
    supervised, zsl = corel_reports(args.shared, args.runs)
    share, hubs, examples = hubs_and_examples(args.shared)
    walls["evaluation"] = time.perf_counter() - step
    total = time.perf_counter() - started
    (args.runs / "figures.json").write_text(json.dumps({"tiny": figures, "hub_share": share, "hubs": hubs,
                                                         "examples": examples}, indent=2, default=str))
    body = f"""## Open world

{provenance("python scripts/bench_open_world.py", total)}

One run, seed 0, frozen ImageNet EfficientNet-Lite0 features (Lite2 where the BCE and Fast0Tag configs ask for it
on Corel5k; the whole view for the default model) extracted on {fastest_runtime()} (torch where a side is off the
CNN's stride: Lite2's 260 px), no mirrored features (the WARP, BCE and Fast0Tag configs train with them in the
Corel5k benchmark above), {ENCODER} label vectors unless a row says otherwise; {args.jobs} training runs side by side with one
thread each.

### Where the goals stand

{chr(10).join(goal_lines(figures, supervised, zsl, share, examples, total))}

### Tiny ImageNet, zero-shot: 50 unseen classes held out of training

Top-1/top-5 accuracy (%) on the {figures["unseen photos"]} validation photos of the unseen classes; ZSL ranks the 50
unseen names, GZSL all 202. Fast0Tag here uses Lite0 (its config's Lite2 would need the Tiny ImageNet photos
extracted again).

{table(["method", "ZSL top-1", "ZSL top-5", "GZSL top-1", "GZSL top-5"], zsl_rows)}

### Tiny ImageNet, all 202 classes: the embedded default model

Top-1/top-5 accuracy (%) on all 10,100 validation photos (the default model trained on the training photos of
all 202 classes).

{table(["method", "top-1", "top-5"], default_rows)}

### Corel5k supervised: 374 words, 5 tags (test split)

{corel_table(supervised)}

### Corel5k zero-shot: 50 unseen words (ZSL protocol)

{corel_table(zsl)}

### Hub share and the example photos

The default model ranking the everyday vocabulary (vocab/everyday.txt) over the
Tiny ImageNet validation and Corel5k test photos: the 10 most frequent tags take **{pct(share)} %** of all top-5
slots ({', '.join(f'{t} {n}' for t, n in hubs)}).

{table(["photo", "top 10 (everyday vocabulary)"], [[name, ", ".join(tags)] for name, tags in examples.items()])}

### Wall times

{table(["step", "seconds"], [[name, f"{seconds:.0f}"] for name, seconds in walls.items()])}

### What was tried (validation splits only)

`scripts/tune_open_world.py`: each trial trains configs/open_world.toml with the listed change on the zero-shot
mixture and is scored on photos no trial trains on — Tiny ImageNet's *training* photos of the 50 unseen classes
(ZSL/GZSL top-1), the Corel5k photos the trainer holds out (per-word F1@5 over seen words, mAP over the unseen
words), hub share over the everyday vocabulary on both († : measured over the model's own training labels, a
bug of the tuning script fixed since; over the everyday vocabulary "block alpha 7" has 33.3 % and "learned
rows' norm 40" 4.9 %). The ConSE rows are the same photos ranked by training-free ConSE with each label
encoder: with the transformation-model trials that name an encoder, the encoder comparison behind the
default (`wordllama`). The gate trials were scored on the trained runs they name with the gate switched on:
the gate is ranking-time only (g = 1 on every training label), so training is the same. GZSL seen: the
held-out photos of the 152 seen classes ranked over all 202 names; H: the harmonic mean of GZSL seen and
unseen top-1 (GZSL over unseen-class photos alone rewards a model that prefers unseen names on every photo).
The rule was the largest Tiny ZSL top-1 + Corel F1@5 until the gate; from the gate trials on, H joined it:
ZSL + H + Corel F1 is 123.3 for the gate at the 1 % level (the default since), 122.5 for learned rows' norm
40 (the default before), 122.3 for the gate at the best label's level.
The unnamed gate's trials tie on that sum (it changes no Tiny ImageNet name's score, each names a class,
and no training label's), so the goals broke the tie: at 4 it raises Corel5k ZSL mAP 10.4 → 12.7 with the
hub share unchanged (8.8 %); 2 and 1 raise it to 14.1 and 16.0, but 'butcher' then enters the top 5 of about
17 % and 26 % of the validation photos.
Tried on the same run (unnamed gate 4) with a throwaway script, not kept: each tag's squared distance
divided by its mean over 256 training photos of the mixture (a per-tag scale of its label vector, so the
engine would not change): Tiny ZSL top-1 64.6 → 65.6, but H 52.1 → 40.6, Corel F1@5 36.1 → 31.0, Corel ZSL
mAP 12.7 → 12.3 (F1@5 9.1 → 10.7) and hub share 8.8 → 13.7 % ('facade', 'outside'). "open world, Corel5k
only" trains the recipe on Corel5k's seen words alone: Corel ZSL mAP 14.8, F1@5 10.1 (the mixture's run:
12.7, 9.1), on other held-out Corel5k photos (its split is drawn over Corel5k alone) and with Corel F1@5 34.5.
The benchmark's open-world rows stay the mixture's, the recipe of the default model.
Corel5k alone gives a fifth of the mixture's training steps at 20 epochs: at 40 its validation F1@5 rises
34.5 → 36.8 (Corel ZSL mAP 14.8 → 14.6), so the benchmark's "trained on Corel5k alone" row trains 40; a
2048-wide head with dropout 0.5 there scored 33.4, without dropout 36.4, 50 learned rows (k) 35.9, 300
negatives per photo instead of 40 (nearer BCE, which weighs every label; +0.9 in the Corel5k tuning) 36.2
with hub share 15.5 %, 60 epochs 35.8, and Lite2 features (BCE's backbone,
41.9 against 40.7 on Lite0 in the Corel5k tuning) 34.6: the transformation model's block reads the
backbone's ImageNet classifier, and Lite2's did not serve it better here. Tried and not kept (their code is not in the package):
a learned offset per training label added to the vector the learned rows read (the per-label freedom of
BCE's and WARP's own weights; a tag equal to a training label read it at ranking time), with the offsets'
squared norm weighted 0 or 1 in the loss: Corel F1@5 36.5 and 37.4 against 36.8, but the learned offsets
made hubs of training labels ('lighting', 'cub'): hub share 49.0 % and 26.7 %. And, on "name row beta 60"
(ranking-time), the faded say given to the learned rows' reach of the tag's neighbourhood among the training
labels, m(w) = unit(Σ softmax(cos(w, s)/τ) s), instead of the constant level: at τ = 0.02 and 0.05 Corel ZSL
mAP 12.7 → 14.0 and 14.2 (F1@5 9.1 → 11.5 and 13.6), but Tiny ZSL top-1 64.6 → 41.3 and 33.9, H 52.1 → 41.5
and 35.6. MiniLM label vectors (the `minilm` encoder; ConSE with them scores Corel ZSL mAP 16.6 against
wordllama's 12.1 on these photos) trade the supervised goal for the zero-shot one: on Corel5k alone (40 epochs)
Corel F1@5 36.8 → 33.7, Corel ZSL mAP 14.6 → 19.6, F1@5 9.0 → 17.1 (Fast0Tag's reference: 18.4, 14.1), hub
share 12.4 → 16.0 %; on the mixture (the default's recipe) Tiny ZSL top-1 64.6 → 66.0, H 52.1 → 53.3, Corel
F1@5 36.1 → 33.0, Corel ZSL mAP 12.7 → 17.2 (F1@5 9.1 → 18.5), hub share 8.8 → 11.6 %: ZSL + H + Corel F1
152.3 against 152.8. Not kept for now: the supervised gap to WARP and BCE would widen by 3 points, and the
default model would need the `minilm` extra (sentence-transformers, seconds to import) for any vocabulary
not cached. Both encoders side by side (`wordllama+minilm`, each half unit length, 640-d) keep wordllama's
supervised figure on Corel5k alone (40 epochs: Corel F1@5 36.6 against 36.8, Corel ZSL mAP 18.3, F1@5 11.4,
but hub share 22.1 %: 'asia temple', 'gardening') and not on the mixture (Tiny ZSL top-1 65.8, H 51.8,
Corel F1@5 33.0, Corel ZSL mAP 14.6, F1@5 14.6, hub share 10.5 %: ZSL + H + Corel F1 150.6). Not kept: below
wordllama on the rule, and at d = 640 the default model's head alone would be 33 MB. For Corel5k's zero-shot
split, which the default model is not built for, the recipe trained on Corel5k's seen words with MiniLM labels
is the benchmark's own row ("open world, Corel5k only, MiniLM", 20 epochs: Corel ZSL mAP 20.1, F1@5 17.2
against Fast0Tag's reference 18.4, 14.1 and ConSE's 16.6 with MiniLM; at 40 epochs 19.6, 17.1, and 20 fit the
benchmark's 40 minutes). "Fast0Tag (reference)"
is configs/fast0tag.toml trained on the same zero-shot mixture, Lite0 and no mirrored photos as in this
benchmark, scored like the trials: the reference for the Corel5k zero-shot goal on validation photos.
Seed spread of the supervised goal's rows (2026-12-02, a throwaway script calling this script's `train_run`
with `train.seed` 1 and 2, scored on the Corel5k test split like the table above; a check, not a choice):
per-word F1@5 of the open world on Corel5k alone 37.0 (seed 0, that day's run), 35.7, 35.4 (mean 36.0); WARP
37.4, 35.6, 38.2 (37.1); BCE 38.7, 39.5, 38.9 (39.0). BCE leads in every seed (by 3.0 on the mean): the
gap is not seed noise. WARP leads on the mean by 1.0 and in two seeds of three. All three seeds trained with
PyTorch's default Adam. Again with the fused Adam (2026-12-02, same script): open world 38.5 (seed 0, the table
above), 36.1, 35.4 (mean 36.7); WARP 38.0, 37.3, 36.8 (37.4); BCE 39.0, 39.9, 39.0 (39.3). BCE still leads
in every seed, by 2.6 on the mean, mostly on recall (seed 1: per-word R@5 47.6 against 39.1, P@5 34.3
against 33.6): it puts more rare words in a photo's top 5.
Per-tag calibration for the supervised goal (2026-12-02, a throwaway script on "Corel5k only, 40 epochs,
hidden 2048", validation F1@5 36.4): each tag's squared distance less λ times its mean over the n training
photos nearest to it (CSLS's hub correction, which favours a tag where a photo is unusually close to it),
n 5-50, λ 0.25-1: 34.9-37.8 over 12 settings, with no trend to choose from (n 20: 36.6, 37.8, 36.6 for λ
0.25, 0.5, 1); z-scoring each tag over the training photos: 31.2 and 32.9. Not kept.
A softmax loss (2026-12-02, `method.loss = "softmax"`: each positive against every negative label of the
photo at once, as BCE sees every label, instead of the hinge on 40 sampled negatives; trials "..., softmax
loss T 1" and "T 4" below): validation F1@5 37.0 and 37.2 against the hinge's 36.8 (trained with Adam's
earlier kernel), best epochs 17 of 40, but hub share 37 % and 39 % against 12 %, and Corel ZSL mAP 13.9 and
12.1 against 14.6. Not kept.
Mirrored photos (2026-12-02, `backbone.flip_features`: BCE and WARP train on a mirrored copy of each photo
half the time, the open-world recipe did not; trials "..., mirrored photos" below): validation F1@5 36.5 at
40 epochs and 36.4 at 60, against 36.8 without; Corel ZSL mAP 14.0 and 13.5 against 14.6. Not kept.

{tuning_table()}
"""
    text = args.out.read_text(encoding="utf-8") if args.out.is_file() else "# Benchmarks\n"
    args.out.write_text(replace_section(text, SECTION, body), encoding="utf-8")
    print(f"wrote {args.out} in {total / 60:.1f} min")


def tuning_table() -> str:
    path = ROOT / "benchmarks" / "open_world_tuning.jsonl"
    entries = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.is_file() else []

    def maybe(entry: dict, key: str) -> str:  # figures that later trials added
        return pct(entry[key]) if entry.get(key) is not None else ""

    rows = [[e["name"], e["settings"].get("vectors", ENCODER), pct(e["tiny_zsl_top1"]), pct(e["tiny_zsl_top5"]), pct(e["tiny_gzsl_top1"]),
             maybe(e, "tiny_gzsl_seen_top1"), maybe(e, "tiny_gzsl_H"), pct(e["corel_F1@5"]), e.get("corel_N+@5") or "",
             pct(e["corel_zsl_mAP"]), maybe(e, "corel_zsl_F1@5"),
             (pct(e["hub_share"]) + ("" if e.get("hub_vocabulary") == "everyday" else " †")) if "hub_share" in e else "n/a",
             e.get("best_epoch", ""),
             f"{e['seconds']:.0f}" if "seconds" in e else ""] for e in entries]
    return table(["trial", "label encoder", "Tiny ZSL top-1", "ZSL top-5", "GZSL top-1", "GZSL seen top-1", "H",
                  "Corel F1@5", "N+@5", "Corel ZSL mAP", "Corel ZSL F1@5",
                  "hub share", "best epoch", "seconds"], rows)


if __name__ == "__main__":
    sys.exit(main())
