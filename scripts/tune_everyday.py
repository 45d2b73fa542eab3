"""Choose the default tagger's parts on validation photos built here: what a user reads on everyday photos.

    python scripts/tune_everyday.py [--shared ../shared] [--only NAME ...] [--mosaics 400]

Each trial is a tagger (the shipped default model, ConSE with some encoder and view, ConSE with the name
match, or a model trained by scripts/build_default_model.py --out) scored by
:func:`tagrank.evaluation.everyday.everyday_figures` on:
  * the "tune" half of Tiny ImageNet's validation photos (even positions per class; 10 per class here), over
    the 202 class names and over the everyday vocabulary (specific and WordNet-generic names, spelling
    look-alikes at ranks 2–5, hub share);
  * mosaics of 2–4 of those photos (seed 0), over the 202 class names (sample mAP, precision@3);
  * 500 Corel5k training photos (the last ones) over their words, for the training-free taggers (a trained
    model is scored on its own held-out photos instead: --model-validation).
The "report" half (odd positions) is left for scripts/bench_open_world.py. Results go to
benchmarks/everyday_tuning.jsonl, which BENCHMARKS.md renders.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOG = ROOT / "benchmarks" / "everyday_tuning.jsonl"
PER_CLASS = 10  # tune-half photos per class

TRIALS: list[tuple[str, dict]] = [
    ("default model (wordllama, centre crop)", {"model": "default"}),
    ("ConSE, wordllama, centre crop", {"vectors": "wordllama", "backbone": "lite0"}),
    ("ConSE, MiniLM, centre crop", {"vectors": "minilm", "backbone": "lite0"}),
    ("ConSE, MiniLM, whole photo + cells", {"vectors": "minilm", "backbone": "lite0-whole"}),
    ("ConSE, wordllama, whole photo + cells", {"vectors": "wordllama", "backbone": "lite0-whole"}),
    # The name match (a tag that names a class, or a WordNet synset above classes, gets their probability):
    # its weight mu against the cosine, and the generic names' share n^-gamma of their n classes' mass.
    *[(f"ConSE + names mu {mu} gamma {gamma}, MiniLM, whole", {"vectors": "minilm", "backbone": "lite0-whole",
                                                              "name_weight": float(mu), "generality": float(gamma)})
      for mu in (10,) for gamma in (0.0, 0.2, 0.35, 0.5, 0.65, 0.8)],
    *[(f"ConSE + names mu {mu} gamma 0.35, MiniLM, whole", {"vectors": "minilm", "backbone": "lite0-whole",
                                                           "name_weight": float(mu), "generality": 0.35})
      for mu in (3, 30)],
    # The best cells' share rho of the class probabilities (the rest: the whole photo's): 0.5 above.
    *[(f"ConSE + names mu 10 gamma 0.5 rho {rho}, MiniLM, whole", {"vectors": "minilm", "backbone": "lite0-whole",
                                                                  "name_weight": 10.0, "generality": 0.5,
                                                                  "region_weight": rho}) for rho in (0.2, 0.35)],
    # The regions: windows of 3×3 cells (their mean features classified) instead of single cells.
    ("ConSE + names mu 10 gamma 0.5, MiniLM, whole + 3x3 regions", {"vectors": "minilm", "backbone": "lite0-whole-r3",
                                                                    "name_weight": 10.0, "generality": 0.5}),
    *[(f"ConSE + names mu 10 gamma 0.5 rho {rho}, MiniLM, whole + 3x3 regions",
       {"vectors": "minilm", "backbone": "lite0-whole-r3", "name_weight": 10.0, "generality": 0.5, "region_weight": rho})
      for rho in (0.35, 0.65)],
    # The encoder with the name match: wordllama's spelling neighbours against MiniLM's meaning.
    ("ConSE + names mu 10 gamma 0.5, wordllama, whole", {"vectors": "wordllama", "backbone": "lite0-whole",
                                                         "name_weight": 10.0, "generality": 0.5}),
    ("ConSE + names mu 10 gamma 0.35, MiniLM, centre crop", {"vectors": "minilm", "backbone": "lite0",
                                                             "name_weight": 10.0, "generality": 0.35}),
]


def tagger_for(settings: dict):
    from tagrank.images.backbone import Backbone
    from tagrank.labels.encoders import load_encoder
    from tagrank.methods.conse import Conse, ConseOptions
    from tagrank.tagger import Tagger

    if "model" in settings:
        tagger = Tagger.load(None if settings["model"] == "default" else settings["model"])
        for name, value in settings.get("ranking", {}).items():  # ranking-time options: the gate, the name match
            setattr(tagger.method.options, name, value)
            if hasattr(getattr(tagger.method, "knowledge", None), name):
                setattr(tagger.method.knowledge, name, value)
        return tagger
    encoder = load_encoder(settings["vectors"])
    backbone = Backbone(settings["backbone"])
    options = ConseOptions(name_weight=settings.get("name_weight", 0.0), generality=settings.get("generality", 0.0),
                           region_weight=settings.get("region_weight", 0.5))
    meta = {"method": "conse", "labels": [], "backbone": {"name": backbone.name, "signature": backbone.signature}}
    tagger = Tagger.load(method="conse", vectors=encoder)
    return Tagger(Conse.build(backbone, encoder, options), backbone, encoder, meta, tagger.default_tags)


def validation_sets(shared: Path, count: int):
    from tagrank.evaluation.everyday import tiny_halves
    from tagrank.images.mosaics import make_mosaics
    from tagrank.images.datasets import load_dataset

    tiny = tiny_halves(load_dataset("tinyimagenet", shared / "data" / "tiny-imagenet", "test"), "tune")
    classes = tiny.matrix.argmax(axis=1)
    keep, seen = [], {}
    for i, c in enumerate(classes):
        seen[c] = seen.get(c, 0) + 1
        if seen[c] <= PER_CLASS:
            keep.append(i)
    tiny = tiny.subset(keep)
    mosaics = make_mosaics(tiny.paths, list(tiny.matrix.argmax(axis=1)), ROOT / "runs" / "mosaics_tune", count, seed=0)
    corel = load_dataset("corel5k", shared / "data" / "corel5k", "train")
    corel = corel.subset(list(range(len(corel) - 500, len(corel))))
    return tiny, mosaics, corel


def model_settings(spec: str) -> dict:
    """RUN_DIR or RUN_DIR:{"learned_gate": 16}: a trained model, with ranking-time options changed."""
    path, _, options = spec.partition(":")
    return {"model": path, **({"ranking": json.loads(options)} if options else {})}


def corel_for(settings: dict, corel):
    """The Corel5k photos a trial is scored on: a trained candidate's own held-out ones (it trained on the rest)."""
    held_out = Path(settings.get("model", "")) / "validation_paths.txt"
    if not held_out.is_file():
        return corel
    from tagrank.images.datasets import load_dataset

    kept = set(held_out.read_text(encoding="utf-8").split("\n"))
    whole = load_dataset("corel5k", Path(corel.paths[0]).parents[2], "train")
    return whole.subset([i for i, p in enumerate(whole.paths) if p in kept])


def main() -> None:
    from tagrank.evaluation.everyday import everyday_figures
    from tagrank.training.trials import TrialLog

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--mosaics", type=int, default=400)
    parser.add_argument("--model", action="append", default=[],
                        help="NAME=RUN_DIR[:JSON]: a trained model as one more trial, JSON: ranking-time options")
    parser.add_argument("--cache-dir", default=None, help="the feature cache (default: tagrank's)")
    args = parser.parse_args()
    trials = TRIALS + [(name, model_settings(spec)) for name, spec in (m.split("=", 1) for m in args.model)]
    log = TrialLog(LOG, [t[0] for t in trials])
    tiny, mosaics, corel = validation_sets(args.shared, args.mosaics)
    for name, settings in log.wanted(trials, args.only or ([t[0] for t in trials[len(TRIALS):]] or None)):
        start = time.time()
        figures = everyday_figures(tagger_for(settings), tiny, mosaics, corel_for(settings, corel), cache_dir=args.cache_dir)
        entry = {"name": name, "settings": settings, **figures, "seconds": round(time.time() - start, 1)}
        log.record(entry)
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in entry.items() if k != "hubs"}),
              flush=True)


if __name__ == "__main__":
    main()
