"""Derive the ImageNet hierarchy table shipped in the package from WordNet 3.0 nouns.

    python scripts/make_wordnet_table.py [--shared ../shared]

Reads ../shared/data/wordnet/{data,index}.noun and the 1,000 ImageNet-1k class ids (timm's metadata, in
class order) and writes tagrank/labels/wordnet/imagenet_hierarchy.json: every synset that is an ImageNet
class or one of their hypernyms (`@`, `@i`, closed transitively), with its lemmas, its lexicographer file,
its depth and the classes below it; and, per lemma, its senses among those synsets in WordNet's sense
order (index.noun). WordNet's licence notice is copied beside it (LICENSE.txt).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
from pathlib import Path

from tagrank.labels.wordnet import HIERARCHY, LICENSE

ROOT = Path(__file__).resolve().parent.parent


def imagenet_wnids() -> list[str]:
    """The ImageNet-1k synset ids in class order, from timm's metadata (read as a file: no timm import)."""
    timm = Path(importlib.util.find_spec("timm").origin).parent
    wnids = (timm / "data" / "_info" / "imagenet_synsets.txt").read_text(encoding="utf-8").split()
    assert len(wnids) == 1000, len(wnids)
    return wnids


def read_synsets(data_noun: Path) -> dict[str, dict]:
    """offset -> {lemmas, lexfile, hypernyms} for every noun synset (WordNet's data file format)."""
    synsets = {}
    for line in data_noun.read_text(encoding="utf-8").splitlines():
        if line.startswith("  "):  # the licence header
            continue
        fields = line.split(" | ")[0].split()
        offset, lexfile, count = fields[0], int(fields[1]), int(fields[3], 16)
        lemmas = [fields[4 + 2 * i] for i in range(count)]
        at = 4 + 2 * count
        pointers = int(fields[at])
        hypernyms = [fields[at + 1 + 4 * i + 1] for i in range(pointers) if fields[at + 1 + 4 * i] in ("@", "@i")]
        synsets[offset] = {"lemmas": lemmas, "lexfile": lexfile, "hypernyms": hypernyms}
    return synsets


def read_senses(index_noun: Path) -> dict[str, list[str]]:
    """lemma -> its synset offsets in sense order (most frequent first)."""
    senses = {}
    for line in index_noun.read_text(encoding="utf-8").splitlines():
        if line.startswith("  "):
            continue
        fields = line.split()
        count, pointers = int(fields[2]), int(fields[3])
        senses[fields[0]] = fields[6 + pointers:6 + pointers + count]
    return senses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    args = parser.parse_args()
    wordnet = args.shared / "data" / "wordnet"
    synsets = read_synsets(wordnet / "data.noun")
    lexnames = [line.split()[1] for line in (wordnet / "lexnames").read_text(encoding="utf-8").splitlines()]
    classes = [wnid[1:] for wnid in imagenet_wnids()]
    below: dict[str, set[int]] = {}
    depth: dict[str, int] = {}

    def ancestors(offset: str) -> set[str]:
        seen, todo = set(), [offset]
        while todo:
            current = todo.pop()
            if current not in seen:
                seen.add(current)
                todo.extend(synsets[current]["hypernyms"])
        return seen

    def depth_of(offset: str) -> int:  # shortest path to the root (entity)
        if offset not in depth:
            parents = synsets[offset]["hypernyms"]
            depth[offset] = 0 if not parents else 1 + min(depth_of(p) for p in parents)
        return depth[offset]

    for c, offset in enumerate(classes):
        for ancestor in ancestors(offset):
            below.setdefault(ancestor, set()).add(c)
    order = sorted(below)
    table = {
        "source": "WordNet 3.0 nouns (Princeton University; licence in LICENSE.txt beside this file), "
                  "made by scripts/make_wordnet_table.py",
        "classes": ["n" + offset for offset in classes],
        "synsets": [{"id": "n" + offset, "lemmas": [l.replace("_", " ") for l in synsets[offset]["lemmas"]],
                     "lexfile": lexnames[synsets[offset]["lexfile"]], "depth": depth_of(offset),
                     "classes": sorted(below[offset])} for offset in order],
    }
    where = {offset: i for i, offset in enumerate(order)}
    table["senses"] = {lemma.replace("_", " "): [where[o] for o in offsets if o in where]
                       for lemma, offsets in read_senses(wordnet / "index.noun").items()
                       if any(o in where for o in offsets)}
    HIERARCHY.parent.mkdir(parents=True, exist_ok=True)
    HIERARCHY.write_text(json.dumps(table, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
    shutil.copy(wordnet / "LICENSE.txt", LICENSE)
    print(f"wrote {HIERARCHY}: {len(order)} synsets, {len(table['senses'])} lemmas, "
          f"{HIERARCHY.stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
