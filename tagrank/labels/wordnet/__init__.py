"""WordNet's nouns above the ImageNet classes: generic tags ('dog', 'animal', 'food') from class probabilities.

The backbone's classifier knows 1,000 fine-grained classes ('Norfolk terrier', 'consomme'). A tag that
names a WordNet synset above some of them draws on those classes together: P(dog) is the sum of the dog
breeds' probabilities (the name match gives a generic name a share of it, n^-γ for n classes). :data:`HIERARCHY` (derived from WordNet 3.0 by
``scripts/make_wordnet_table.py``; WordNet's licence in ``LICENSE.txt`` beside it) holds every synset
on the way from a class up to 'entity', its lemmas and the classes below it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

HIERARCHY = Path(__file__).resolve().parent / "imagenet_hierarchy.json"
LICENSE = Path(__file__).resolve().parent / "LICENSE.txt"

TAGGED_TOPS = {"n00015388", "n00007846", "n00017222", "n00021265"}
"""WordNet's top synsets (noun.Tops: entity, object, whole, organism, artifact, …) are too abstract to be
tags and would top every photo; these four people do post: animal, person, plant, food."""
WHAT_THINGS_ARE_MADE_OF = {"noun.substance", "noun.relation"}
"""Lexicographer files whose synsets above several classes say what a thing is made of or is part of
('liquid' and 'fluid' above espresso, 'solid', 'agent', 'component', 'part'), not what a photo shows: they
took slots of coffee's top 5. A synset of theirs that is one class's own ('toilet tissue') stays."""


@dataclass(frozen=True)
class Generic:
    """The names that WordNet gives sets of ImageNet classes: one row per lemma (its first sense above some
    class, in WordNet's sense order), with the classes below that sense."""

    lemmas: list[str]
    synsets: list[str]
    classes: list[list[int]]


@lru_cache(maxsize=1)
def generic_names() -> Generic:
    """Every lemma of a synset above ImageNet classes, except the abstract top synsets and the substances and
    parts above several classes; the lemma of several such synsets names its first sense ('cat' is the true
    cat, not the big cat)."""
    table = _table()
    synsets = table["synsets"]
    lemmas, ids, classes = [], [], []
    for lemma, senses in table["senses"].items():
        first = synsets[senses[0]]
        if first["lexfile"] == "noun.Tops" and first["id"] not in TAGGED_TOPS:
            continue
        if first["lexfile"] in WHAT_THINGS_ARE_MADE_OF and len(first["classes"]) > 1:
            continue
        lemmas.append(lemma.lower())
        ids.append(first["id"])
        classes.append(first["classes"])
    return Generic(lemmas, ids, classes)


@lru_cache(maxsize=1)
def _table() -> dict:
    return json.loads(HIERARCHY.read_text(encoding="utf-8"))


def synonym_groups(tags: list[str]) -> list[int]:
    """A group id for each tag that names a synset of the hierarchy (its first sense there), shared by the tags
    naming the same synset ('animal', 'creature', 'fauna', 'beast'; 'Siamese cat', 'siamese'); -1 for the
    others. A ranked list keeps the best of a group: four slots saying one thing leave out three others."""
    senses = _table()["senses"]
    ids: dict[int, int] = {}
    groups = []
    for tag in tags:
        found = senses.get(" ".join(tag.replace("_", " ").split()).lower())
        groups.append(ids.setdefault(found[0], len(ids)) if found else -1)
    return groups


def hierarchy_path(tag: str) -> list[str]:
    """The everyday names above ``tag``'s first WordNet sense, most general first ('tabby': animal, mammal,
    cat); empty when WordNet does not know the tag. A synset counts when it names a generic tag
    (:func:`generic_names`) whose first lemma is in the everyday vocabulary."""
    from tagrank.labels.vocab import DEFAULT_VOCABULARY, load_vocabulary

    table = _table()
    senses = table["senses"].get(tag.lower())
    if not senses:
        return []
    synset = table["synsets"][senses[0]]
    below = set(synset["classes"])
    generic = set(generic_names().synsets)
    everyday = {t.lower() for t in load_vocabulary(DEFAULT_VOCABULARY)}
    above = [s for s in table["synsets"] if s["id"] in generic and s["id"] != synset["id"]
             and s["lemmas"][0].lower() in everyday and below < set(s["classes"])]
    # most general first: more classes below it (WordNet's depths differ between a synset's paths)
    return [s["lemmas"][0] for s in sorted(above, key=lambda s: (-len(s["classes"]), s["depth"]))]
