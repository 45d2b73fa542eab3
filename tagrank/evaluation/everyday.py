"""Checks of what a user reads on everyday photos, built from the data here.

No everyday-photo set with labels ships here, so the checks build their own:

* **mosaics**: 2–4 Tiny ImageNet photos of different classes in one picture, at different sizes
  (:func:`tagrank.images.mosaics.make_mosaics`): photos with several objects and known labels;
* **generic names**: a photo of a Norfolk terrier is also right to be tagged 'terrier', 'dog' or
  'animal' (the WordNet synsets above its class, :func:`relatives`);
* **spelling look-alikes**: a tag spelled like the photo's class name but unrelated in meaning ('kilt'
  for a quilt, 'hassock' for a dock; :func:`is_lookalike`);
* **hubs**: tags that sit in the top 5 of photos they have nothing to do with
  (:func:`tagrank.evaluation.metrics.hub_share`).
"""

from __future__ import annotations

import json
from difflib import SequenceMatcher
from functools import lru_cache

import numpy as np

from tagrank.images.mosaics import Mosaics
from tagrank.labels.encoders.base import normalise_tag

LOOKALIKE_RATIO = 0.5
"""difflib's similarity ratio (2 × matching characters / both lengths) from which two spellings look alike
('quilt'/'kilt' 0.89, 'dock'/'hassock' 0.55, 'skyscraper'/'nutcracker' 0.6); with a common run of 3 letters."""


@lru_cache(maxsize=1)
def _hierarchy() -> dict:
    from tagrank.labels.wordnet import HIERARCHY

    table = json.loads(HIERARCHY.read_text(encoding="utf-8"))
    table["index"] = {s["id"]: i for i, s in enumerate(table["synsets"])}
    return table


def _lemmas(synset: dict) -> set[str]:
    return {normalise_tag(lemma) for lemma in synset["lemmas"]}


def class_names(wnid: str) -> set[str]:
    """The lemmas of an ImageNet class's own synset: every name that is right for a photo of it."""
    table = _hierarchy()
    return _lemmas(table["synsets"][table["index"][wnid]])


def generic_names(wnid: str) -> set[str]:
    """The lemmas of the synsets above an ImageNet class (up to 'entity'), less WordNet's abstract top
    synsets ('object', 'whole', 'organism': :data:`tagrank.labels.wordnet.TAGGED_TOPS` says which tops count)."""
    from tagrank.labels.wordnet import TAGGED_TOPS

    table = _hierarchy()
    c = table["classes"].index(wnid)
    names: set[str] = set()
    for synset in table["synsets"]:
        if c in synset["classes"] and synset["id"] != wnid and (synset["lexfile"] != "noun.Tops"
                                                               or synset["id"] in TAGGED_TOPS):
            names |= _lemmas(synset)
    return names - class_names(wnid)


@lru_cache(maxsize=None)
def _names(wnid: str) -> frozenset[str]:
    """The tags right for a photo of class ``wnid``: its class's names and the generic names above it."""
    return frozenset(class_names(wnid) | generic_names(wnid))


def relatives(wnid: str) -> set[str]:
    """Names related in meaning to an ImageNet class: its synset's lemmas, those of every synset above it and
    those of the ImageNet classes that share its parent (siblings)."""
    table = _hierarchy()
    c = table["classes"].index(wnid)
    above = [s for s in table["synsets"] if c in s["classes"]]
    names = set().union(*(_lemmas(s) for s in above))
    parents = [s for s in above if s["id"] != wnid and len(s["classes"]) <= 50]  # near ancestors
    nearest = min(parents, key=lambda s: len(s["classes"]), default=None)
    if nearest is not None:
        for sibling in nearest["classes"]:
            names |= class_names(table["classes"][sibling])
    return names


def is_lookalike(tag: str, name: str, related: set[str]) -> bool:
    """Whether ``tag`` merely looks like ``name`` in spelling: similar letters (:data:`LOOKALIKE_RATIO`, a
    common run of 3), no word in common, and not a name ``related`` in meaning."""
    tag, name = normalise_tag(tag), normalise_tag(name)
    if tag == name or tag in related or set(tag.split()) & set(name.split()):
        return False
    matcher = SequenceMatcher(None, tag, name)
    longest = matcher.find_longest_match(0, len(tag), 0, len(name)).size
    return longest >= 3 and matcher.ratio() >= LOOKALIKE_RATIO


def lookalike_share(top_tags: list[list[str]], wnids: list[str], ranks: slice = slice(1, 5)) -> float:
    """The share of the tags at ``ranks`` (default 2–5) that are spelling look-alikes of the photo's class name."""
    flagged = total = 0
    for tags, wnid in zip(top_tags, wnids):
        related = relatives(wnid)
        names = class_names(wnid)
        for tag in tags[ranks]:
            total += 1
            flagged += any(is_lookalike(tag, name, related) for name in names)
    return flagged / max(total, 1)


def hit_rate(top_tags: list[list[str]], right: list[set[str]], k: int) -> float:
    """The share of photos with a right tag among their first ``k`` (tags compared normalised)."""
    hits = [bool({normalise_tag(t) for t in tags[:k]} & names) for tags, names in zip(top_tags, right)]
    return float(np.mean(hits)) if hits else 0.0


def unrelated_slots(top_tags: list[list[str]], classes: list[list[str]]) -> np.ndarray:
    """(photos, K) whether each ranked tag names nothing in its photo: neither a class of ``classes`` (each photo's
    WordNet ids, several for a mosaic) nor a synset above one (tags compared normalised, as :func:`hit_rate`)."""
    rows = []
    for tags, wnids in zip(top_tags, classes):
        right = frozenset().union(*map(_names, wnids))
        rows.append([normalise_tag(t) not in right for t in tags])
    return np.array(rows, dtype=bool)


def confidence_monotone(results: list[list[dict]]) -> bool:
    """Whether every list of ranked tags has confidences that never rise down the list."""
    return all(all(a["confidence"] >= b["confidence"] for a, b in zip(tags, tags[1:])) for tags in results)


def tiny_halves(data, half: str):
    """Tiny ImageNet's validation photos split for choosing and for reporting: per class, the photos at even
    positions are ``"tune"``, those at odd positions ``"report"``."""
    if half not in ("tune", "report"):
        raise ValueError(f"half is 'tune' or 'report', not {half!r}")
    seen: dict[int, int] = {}
    rows = []
    for i, c in enumerate(data.matrix.argmax(axis=1)):
        position = seen[c] = seen.get(c, -1) + 1
        if position % 2 == (0 if half == "tune" else 1):
            rows.append(i)
    return data.subset(rows)


def everyday_figures(tagger, tiny, mosaics: Mosaics, corel=None, vocab: list[str] | None = None,
                     cache_dir: str | None = None) -> dict:
    """What a user would see of ``tagger``, as figures: on Tiny ImageNet photos (``tiny``: single objects,
    a :class:`~tagrank.images.datasets.Dataset` with WordNet ids as aliases) over its class names and over
    ``vocab`` (default: the tagger's own, the everyday vocabulary), on ``mosaics`` of its photos (several
    objects) over the class names, and on Corel5k photos (``corel``, scenes) over their words."""
    from tagrank.evaluation.metrics import average_precision, evaluate_scores, hub_share, top_k_accuracy
    from tagrank.evaluation.protocols import _features, model_scores

    wnid_of = {name: wnid for wnid, name in tiny.aliases.items()}
    names = list(tiny.labels)
    paths, features = _features(tagger, tiny.paths, cache_dir, False)
    row = {p: i for i, p in enumerate(tiny.paths)}
    truth = tiny.matrix[[row[p] for p in paths]].argmax(axis=1)
    wnids = [wnid_of[names[c]] for c in truth]
    raw, _, _ = model_scores(tagger, features, names)
    accuracy = top_k_accuracy(raw, truth, (1, 5))
    prepared = tagger.prepare(vocab)
    ranked = _ranked(tagger, features, prepared)
    top_tags = [[t["tag"] for t in tags] for tags in ranked]
    figures = {
        "tiny_top1": accuracy[1], "tiny_top5": accuracy[5],
        "tiny_specific@1": hit_rate(top_tags, [class_names(w) for w in wnids], 1),
        "tiny_specific@5": hit_rate(top_tags, [class_names(w) for w in wnids], 5),
        "tiny_generic@5": hit_rate(top_tags, [generic_names(w) for w in wnids], 5),
        "tiny_either@3": hit_rate(top_tags, [_names(w) for w in wnids], 3),
        "lookalikes": lookalike_share(top_tags, wnids),
    }
    mosaic_paths, mosaic_features = _features(tagger, mosaics.paths, cache_dir, False)
    tiles = dict(zip(mosaics.paths, mosaics.tiles))
    mosaic_truth = np.zeros((len(mosaic_paths), len(names)), bool)
    for i, p in enumerate(mosaic_paths):
        mosaic_truth[i, tiles[p]] = True
    mosaic_raw, _, _ = model_scores(tagger, mosaic_features, names)
    top3 = np.argsort(-mosaic_raw, axis=1, kind="stable")[:, :3]
    figures["mosaic_sample_mAP"] = float(np.nanmean(average_precision(mosaic_raw, mosaic_truth, axis=1)))
    figures["mosaic_P@3"] = float(np.take_along_axis(mosaic_truth, top3, axis=1).mean())
    mosaic_ranked = _ranked(tagger, mosaic_features, prepared)
    every_list = ranked + mosaic_ranked  # the Tiny photos' lists, then the mosaics'
    every_tags = [[t["tag"] for t in tags] for tags in every_list]
    where = {t: i for i, t in enumerate(prepared.tags)}
    slots = np.array([[where[t] for t in tags] for tags in every_tags])
    figures["hub_share"], hubs = hub_share(slots, 10)
    # the same slots where the tag names nothing in the photo (a mosaic: none of its tiles' classes)
    classes = [[w] for w in wnids] + [[wnid_of[names[c]] for c in tiles[p]] for p in mosaic_paths]
    figures["hub_share_unrelated"], _ = hub_share(slots, 10, unrelated_slots(every_tags, classes))
    figures["hubs"] = [[prepared.tags[i], n] for i, n in hubs]
    if tagger.calibration is not None:
        figures["confidence_monotone"] = confidence_monotone(every_list)
    if corel is not None:
        corel_paths, corel_features = _features(tagger, corel.paths, cache_dir, False)
        rows = [{p: i for i, p in enumerate(corel.paths)}[p] for p in corel_paths]
        present = corel.matrix[rows].any(axis=0)
        words = [w for w, keep in zip(corel.labels, present) if keep]
        corel_raw, comparable, _ = model_scores(tagger, corel_features, words)
        metrics = evaluate_scores(corel_raw, corel.matrix[rows][:, present], words, (5,), class_scores=comparable)
        figures["corel_F1@5"] = metrics.top_k[5].CF1  # per word, the Corel5k convention
        figures["corel_mAP"] = metrics.mAP
        figures["corel_sample_mAP"] = metrics.sample_mAP
    return figures


def _ranked(tagger, features: np.ndarray, prepared, top: int = 5) -> list[list[dict]]:
    ranked = []
    for start in range(0, len(features), 256):
        ranked += tagger.rank_features(features[start:start + 256], prepared, top)
    return ranked
