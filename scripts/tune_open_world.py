"""Tune the open-world transformation model on validation splits, never on test photos.

    python scripts/tune_open_world.py [--shared ../shared] [--runs runs/tune_ow] [--jobs 2] [--only NAME ...]

Each trial trains configs/open_world.toml, with the fields it names changed, on the zero-shot mixture
(the trials' order is the order the questions were asked in; each lists every field it sets):
Corel5k's training split without its 50 unseen words and Tiny ImageNet's training photos without its 50
unseen classes. It is scored on photos no trial trains on:

* Tiny ImageNet ZSL/GZSL: the *training* photos of the 50 unseen classes (5,000), ranking the 50 unseen
  names (ZSL) or all 202 (GZSL): top-1 and top-5 accuracy; GZSL also on the photos of the 152 seen classes
  that the trainer holds out (ranking all 202), and the harmonic mean H of the seen and unseen top-1
  (a model that favours unseen names on every photo gains on the one and loses on the other);
* Corel5k: the 10% of its training split the trainer holds out (seed 0), ranking the seen words (per-word
  F1@5, N+) and the 50 unseen words (mAP);
* hub share: the share of top-5 slots over the everyday vocabulary taken by its 10 most frequent tags,
  over the Tiny ImageNet validation photos above and the Corel5k held-out photos.

ConSE with the same encoder is scored on the same photos. Results go to benchmarks/open_world_tuning.jsonl
(one line per trial; trials already there with the same settings are not rerun).
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tagrank.training.trials import TrialLog

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "open_world_tuning.jsonl"
CONFIG = ROOT / "configs" / "open_world.toml"

# (name, {"table.field": value}) on top of configs/open_world.toml; "vectors" picks the encoder, "config"
# another config (a baseline for reference), "sources" the datasets of the mixture.
# The trials before the gate's were run without it (learned_gate 0), as written here.
UNBOUNDED = {"method.learned_norm": 0.0, "method.learned_gate": 0.0}  # the learned rows as the paper has them
TRIALS: list[tuple[str, dict]] = [
    ("no block (the paper's A only)", {**UNBOUNDED, "method.backbone_block": False}),
    ("block alpha 3", {**UNBOUNDED, "method.block_weight": 3.0}),
    ("block alpha 7", UNBOUNDED),
    ("block alpha 15", {**UNBOUNDED, "method.block_weight": 15.0}),
    ("block alpha 7, Corel5k only", {**UNBOUNDED, "sources": ["corel5k"]}),
    ("block alpha 7, learned rows' norm 1", {"method.learned_norm": 1.0, "method.learned_gate": 0.0}),
    ("block alpha 7, learned rows' norm 3", {"method.learned_norm": 3.0, "method.learned_gate": 0.0}),
    ("block alpha 7, learned rows' norm 10", {"method.learned_norm": 10.0, "method.learned_gate": 0.0}),
    ("block alpha 7, learned rows' norm 20", {"method.learned_norm": 20.0, "method.learned_gate": 0.0}),
    ("block alpha 7, learned rows' norm 40", {"method.learned_norm": 40.0, "method.learned_gate": 0.0}),
    ("block alpha 7, background words 0.01", {**UNBOUNDED, "method.background_weight": 0.01}),
    ("block alpha 7, learned rows' norm 80", {"method.learned_norm": 80.0, "method.learned_gate": 0.0}),
    ("block alpha 7, background words 0.1", {**UNBOUNDED, "method.background_weight": 0.1}),
    # The chosen recipe of the time (learned rows' norm 40) with GloVe-50 label vectors.
    ("open world, GloVe-50", {"vectors": "glove-6b-50d", "method.learned_norm": 40.0, "method.learned_gate": 0.0}),
    # The gate is ranking-time only (g = 1 on every training label), so these were scored on the trained
    # runs above with the gate switched on ("from" in the results); a rerun trains the same model again.
    *[(f"block alpha 7, gate 8 at the {name} level", {"method.learned_norm": 0.0, "method.learned_gate": 8.0,
                                                      "method.gate_level": level})
      for name, level in (("best label's", 0.0), ("1%", 0.01), ("2%", 0.02), ("5%", 0.05), ("20%", 0.2))],
    ("block alpha 7, gate 4 at the 1% level", {"method.learned_norm": 0.0, "method.learned_gate": 4.0,
                                               "method.gate_level": 0.01}),
    ("learned rows' norm 40, gate 8 at the best label's level", {"method.learned_norm": 40.0,
                                                                 "method.learned_gate": 8.0, "method.gate_level": 0.0}),
    # The name row (a tag that names an ImageNet class gets that class's probability) on the gated recipe.
    *[(f"name row beta {beta}", {"method.name_weight": float(beta), "method.name_temperature": 0.05})
      for beta in (30, 60)],
    # The chosen recipe (name row, gates) trained on Corel5k's seen words alone, as Fast0Tag is: for Corel5k's
    # zero-shot split the mixture's Tiny ImageNet names may pull the learned rows away from Corel5k's words.
    ("open world, Corel5k only", {"sources": ["corel5k"]}),
    # Corel5k alone is a fifth of the mixture: 20 epochs over it are a fifth of the steps. The Corel5k
    # tuning above preferred 40 epochs, and a wider head with dropout, for the transformation model there.
    ("open world, Corel5k only, 40 epochs", {"sources": ["corel5k"], "train.epochs": 40}),
    ("open world, Corel5k only, 40 epochs, hidden 2048, dropout 0.5",
     {"sources": ["corel5k"], "train.epochs": 40, "method.hidden": [2048], "method.dropout": 0.5}),
    # The supervised Corel5k goal is set against BCE, whose config trains on Lite2 features (validation: 41.9
    # against 40.7 on Lite0), and WARP; the transformation model on Lite2, and with more steps.
    ("open world, Corel5k only, 40 epochs, Lite2", {"sources": ["corel5k"], "train.epochs": 40, "backbone.name": "lite2"}),
    ("open world, Corel5k only, 60 epochs", {"sources": ["corel5k"], "train.epochs": 60}),
    # The label-side lever not yet tried on the current recipe: MiniLM's sentence vectors (ConSE with them
    # scored Corel5k ZSL mAP 16.6 against wordllama's 12.1 on these photos).
    ("open world, Corel5k only, 40 epochs, MiniLM", {"sources": ["corel5k"], "train.epochs": 40, "vectors": "minilm"}),
    ("open world, MiniLM", {"vectors": "minilm"}),
    # Both encoders side by side (each half unit length): MiniLM's phrases for unseen tags, wordllama's
    # vectors that the supervised rows read better.
    ("open world, Corel5k only, 40 epochs, wordllama+MiniLM", {"sources": ["corel5k"], "train.epochs": 40,
                                                               "vectors": "wordllama+minilm"}),
    ("open world, wordllama+MiniLM", {"vectors": "wordllama+minilm"}),
    # The Corel5k-alone row is not held to the default model's 25 MB: the head the Corel5k tuning chose for the
    # transformation model there (2048 wide, no dropout), and more learned rows.
    ("open world, Corel5k only, 40 epochs, hidden 2048", {"sources": ["corel5k"], "train.epochs": 40,
                                                          "method.hidden": [2048]}),
    ("open world, Corel5k only, 40 epochs, k 50", {"sources": ["corel5k"], "train.epochs": 40, "method.k": 50}),
    # BCE, the supervised goal's strongest baseline, weighs every label of every photo; the hinge sees 40
    # sampled negatives (the Corel5k tuning of the transformation model scored 300 +0.9 points there).
    ("open world, Corel5k only, 40 epochs, negatives 300", {"sources": ["corel5k"], "train.epochs": 40,
                                                            "method.negatives": 300}),
    # The zero-shot Corel5k goal: MiniLM on Corel5k alone (above Fast0Tag's reference at 40 epochs) at 20 epochs,
    # the time the open-world benchmark has left for one more run under its 40 minutes.
    ("open world, Corel5k only, MiniLM", {"sources": ["corel5k"], "vectors": "minilm"}),
    # The supervised goal again: the hinge sees 40 sampled negatives per photo, BCE every label of every photo.
    # The softmax loss puts each positive against all of the photo's negatives at once (T: its temperature).
    *[(f"open world, Corel5k only, 40 epochs, softmax loss T {t}",
       {"sources": ["corel5k"], "train.epochs": 40, "method.loss": "softmax", "method.temperature": float(t)})
      for t in (1, 4)],
    # BCE and WARP train on mirrored photos half the time (backbone.flip_features); the open-world recipe did
    # not: the same augmentation for the transformation model, and more epochs over the doubled photos.
    *[(f"open world, Corel5k only, {epochs} epochs, mirrored photos",
       {"sources": ["corel5k"], "train.epochs": epochs, "backbone.flip_features": True}) for epochs in (40, 60)],
    # Fast0Tag (configs/fast0tag.toml on the Lite0 features the open-world model has, no mirrored photos, as
    # the benchmark trains it) on the same split, for reference: the Corel5k zero-shot goal is set against it.
    ("Fast0Tag (reference)", {"config": "fast0tag", "backbone.name": "lite0", "backbone.flip_features": False}),
]
# Ranking-time changes (the gate's exponent and level) scored on the run trained for the trial named second;
# the settings are the ones changed on top of that trial's.
RESCORED: list[tuple[str, str, dict]] = [
    *[(f"name row beta 60, gate {p}", "name row beta 60", {"method.learned_gate": float(p)}) for p in (1, 2, 8)],
    # The gate's exponent lower on tags that name no ImageNet class (the name row knows the others).
    *[(f"name row beta 60, unnamed gate {p}", "name row beta 60", {"method.unnamed_gate": float(p)})
      for p in (1, 2, 4)],
]


def configure(settings: dict, shared: Path):
    """configs/open_world.toml with ``settings`` applied, sources rooted in ``shared``, zero-shot splits held out."""
    from tagrank.config import SourceConfig, load_config

    config = load_config(CONFIG.parent / f"{settings.get('config', CONFIG.stem)}.toml")
    data = shared / "data"
    unseen = {"corel5k": data / "corel5k" / "zsl_unseen.txt", "tinyimagenet": data / "tiny-imagenet" / "zsl_unseen.txt"}
    roots = {"corel5k": data / "corel5k", "tinyimagenet": data / "tiny-imagenet"}
    weights = {s.dataset: s.weight for s in load_config(CONFIG).data.sources}  # the open-world mixture's
    config.data.sources = [SourceConfig(dataset, str(root), weights[dataset], str(unseen[dataset]))
                           for dataset, root in roots.items() if dataset in settings.get("sources", roots)]
    for key, value in settings.items():
        table, _, field = key.partition(".")
        if table in ("method", "train", "backbone"):
            target = config.method_options if table == "method" else getattr(config, table)
            if not hasattr(target, field):
                raise SystemExit(f"trial sets unknown config field {key}")
            setattr(target, field, value)
    return config


def validation_sets(shared: Path, held_out: list[str]):
    """(Tiny ImageNet training photos, its 50 unseen names, its held-out photos, Corel5k held-out photos,
    Corel5k seen and unseen words); ``held_out``: the photos the trainer held out of the mixture."""
    from tagrank.images.datasets import load_dataset, read_tag_list

    data = shared / "data"
    tiny = load_dataset("tinyimagenet", data / "tiny-imagenet", "train")
    tiny_unseen = tiny.resolve_aliases(read_tag_list(data / "tiny-imagenet" / "zsl_unseen.txt"))
    corel = load_dataset("corel5k", data / "corel5k", "train")
    corel_unseen = read_tag_list(data / "corel5k" / "zsl_unseen.txt")
    held = set(held_out)
    tiny_val, corel_val = (dataset.subset([i for i, p in enumerate(dataset.paths) if p in held])
                           for dataset in (tiny, corel))
    return tiny, tiny_unseen, tiny_val, corel_val, [t for t in corel.labels if t not in corel_unseen], corel_unseen


def score(tagger, shared: Path, held_out: list[str], cache_dir) -> dict:
    from tagrank.evaluation.protocols import label_accuracy, photo_metrics, vocabulary_hub_share
    from tagrank.labels.vocab import load_vocabulary

    tiny, tiny_unseen, tiny_val, corel_val, corel_seen, corel_unseen = validation_sets(shared, held_out)
    zsl = label_accuracy(tagger, tiny, tiny_unseen, cache_dir=cache_dir)
    gzsl = label_accuracy(tagger, tiny, tiny.labels, photos_of=tiny_unseen, cache_dir=cache_dir)
    out = {"tiny_zsl_top1": zsl[1], "tiny_zsl_top5": zsl[5], "tiny_gzsl_top1": gzsl[1], "tiny_gzsl_top5": gzsl[5]}
    if len(tiny_val):  # a trial trained on Corel5k alone held out no Tiny ImageNet photos
        gzsl_seen = label_accuracy(tagger, tiny_val, tiny.labels, cache_dir=cache_dir,
                                   photos_of=[t for t in tiny.labels if t not in tiny_unseen])
        out["tiny_gzsl_seen_top1"] = gzsl_seen[1]
        out["tiny_gzsl_H"] = 2 * gzsl_seen[1] * gzsl[1] / max(gzsl_seen[1] + gzsl[1], 1e-12)
    if tagger.method.zero_shot:
        unseen_rows = [i for i in range(len(tiny)) if set(tiny.tags_of(i)) & set(tiny_unseen)]
        photos = [tiny.paths[i] for i in unseen_rows] + corel_val.paths
        out["hub_share"], out["hubs"] = vocabulary_hub_share(tagger, photos, load_vocabulary("everyday"),
                                                             cache_dir=cache_dir)
        out["hub_vocabulary"] = "everyday"  # earlier trials measured it over the model's own training labels
    seen = photo_metrics(tagger, corel_val.select_labels(corel_seen), ks=(5,), cache_dir=cache_dir)
    unseen = photo_metrics(tagger, corel_val.select_labels(corel_unseen), ks=(5,), cache_dir=cache_dir)
    out.update({"corel_F1@5": seen.top_k[5].CF1, "corel_N+@5": seen.top_k[5].n_plus, "corel_zsl_mAP": unseen.mAP,
                "corel_zsl_F1@5": unseen.top_k[5].CF1})
    return out


def run_trial(name: str, settings: dict, shared: str, runs: str) -> dict:
    import shutil

    import torch

    from tagrank.labels.encoders import load_encoder
    from tagrank.tagger import Tagger
    from tagrank.training.trainer import run_training

    torch.set_num_threads(1)  # trials run side by side, one core each
    config = configure(settings, Path(shared))
    out = run_dir(runs, name)
    if out.exists():
        shutil.rmtree(out)
    encoder = settings.get("vectors", "wordllama")
    started = time.perf_counter()
    result = run_training("mixture", None, config, out, load_encoder(encoder), progress=False)
    seconds = time.perf_counter() - started
    figures = score(Tagger.load(out), Path(shared), result.validation_paths, config.backbone.cache_dir)
    return {"name": name, "settings": settings, **figures, "best_epoch": result.best_epoch,
            "seconds": round(seconds, 1)}


def run_dir(runs: Path, name: str) -> Path:
    return Path(runs) / "".join(c if c.isalnum() else "_" for c in name)


def rescore_trial(name: str, source: str, settings: dict, shared: Path, runs: Path, held_out: list[str]) -> dict:
    """Trial ``source``'s trained model with the ranking-time ``settings`` changed, scored like a trained trial."""
    from tagrank.tagger import Tagger

    tagger = Tagger.load(run_dir(runs, source))
    options = tagger.method.options
    for key, value in settings.items():
        table, _, field = key.partition(".")
        if table != "method" or field not in ("learned_gate", "gate_level", "unnamed_gate") or not hasattr(tagger.method, "taught_vectors"):
            raise SystemExit(f"{name}: {key} is not a ranking-time change of the gated run {source!r}")
        setattr(options, field, value)
    return {"name": name, "settings": settings, **score(tagger, shared, held_out, None), "from": source,
            "note": "scored on the trained run named in 'from' with the settings changed (ranking-time only)"}


def conse_row(shared: Path, encoder: str, held_out: list[str]) -> dict:
    from tagrank.tagger import Tagger

    return {"name": f"ConSE ({encoder})", "settings": {"vectors": encoder},
            **score(Tagger.load(method="conse", vectors=encoder), shared, held_out, None)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "tune_ow")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--only", nargs="*", help="trial names to (re)run; default: those not yet in the results")
    args = parser.parse_args()

    log = TrialLog(RESULTS, [t[0] for t in TRIALS])
    wanted = log.wanted(TRIALS, args.only)

    # spawn, not fork: a child forked after this process ran torch's thread pool can hang
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {t[0]: pool.submit(run_trial, *t, str(args.shared), str(args.runs)) for t in wanted}
        for name, future in futures.items():
            entry = future.result()
            log.record(entry)
            print(f"{name}: Tiny ZSL top-1 {100 * entry['tiny_zsl_top1']:.1f} top-5 {100 * entry['tiny_zsl_top5']:.1f}, "
                  f"GZSL top-1 {100 * entry['tiny_gzsl_top1']:.1f}, Corel F1@5 {100 * entry['corel_F1@5']:.1f} "
                  f"ZSL mAP {100 * entry['corel_zsl_mAP']:.1f}, hub share {100 * entry['hub_share']:.0f}% "
                  f"({entry['seconds']:.0f} s)", flush=True)
    held_out = _held_out(args.shared)
    for name, source, settings in log.wanted(RESCORED, args.only):
        entry = rescore_trial(name, source, settings, args.shared, args.runs, held_out)
        log.record(entry)
        print(f"{name}: Tiny ZSL top-1 {100 * entry['tiny_zsl_top1']:.1f}, H {100 * entry['tiny_gzsl_H']:.1f}, "
              f"Corel F1@5 {100 * entry['corel_F1@5']:.1f} ZSL mAP {100 * entry['corel_zsl_mAP']:.1f}, "
              f"hub share {100 * entry['hub_share']:.0f}%", flush=True)
    for encoder in ("wordllama", "glove-6b-50d", "minilm", "wordllama+minilm"):
        if f"ConSE ({encoder})" not in log.done:
            log.record(conse_row(args.shared, encoder, held_out))


def _held_out(shared: Path) -> list[str]:
    """The photos every trial's trainer held out of the mixture (same seed and fraction, same filtered set)."""
    from tagrank.training.trainer import _split, training_data

    data, _ = training_data("mixture", None, configure({}, shared))
    _, val_rows = _split(len(data), 0.1, 0)
    return [data.paths[i] for i in val_rows]


if __name__ == "__main__":
    main()
