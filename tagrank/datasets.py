"""Datasets: one reader interface, one small adapter per layout.

Every reader returns a :class:`Dataset`: image ids and paths, the label set, and a boolean label
matrix. ``train``/``eval`` pick a reader by name (``csv``, ``folder``, ``corel5k``, ``nuswide``).
Training-time tag filters (minimum images per tag, no digits, an exclude list, the unseen split) live
in :func:`filter_tags`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from tagrank._log import log
from tagrank.errors import TagrankError
from tagrank.images import IMAGE_SUFFIXES


@dataclass
class Dataset:
    """Images with ground-truth labels. ``matrix[i, j]`` is True when image i has label j."""

    name: str
    ids: list[str]
    paths: list[str]
    labels: list[str]
    matrix: np.ndarray
    missing: list[str] = field(default_factory=list)  # listed in the metadata but not on disk
    concepts: list[str] | None = None  # the conventional protocol's labels when not all (NUS-WIDE: 81)

    def __len__(self) -> int:
        return len(self.ids)

    def tags_of(self, i: int) -> list[str]:
        return [self.labels[j] for j in np.flatnonzero(self.matrix[i])]

    def subset(self, rows: np.ndarray | list[int]) -> "Dataset":
        rows = np.asarray(rows, dtype=np.int64)
        return Dataset(self.name, [self.ids[i] for i in rows], [self.paths[i] for i in rows], list(self.labels),
                       self.matrix[rows], list(self.missing), self.concepts)

    def select_labels(self, labels: list[str]) -> "Dataset":
        """The same images with only ``labels`` (which must all be in the label set), in that order."""
        where = {label: j for j, label in enumerate(self.labels)}
        unknown = [t for t in labels if t not in where]
        if unknown:
            raise TagrankError(f"{self.name}: labels not in the label set: {', '.join(map(repr, unknown[:10]))}")
        cols = [where[t] for t in labels]
        concepts = [c for c in self.concepts if c in set(labels)] if self.concepts else None
        return Dataset(self.name, list(self.ids), list(self.paths), list(labels), self.matrix[:, cols],
                       list(self.missing), concepts)

    def only_present(self) -> "Dataset":
        """Drop images whose file is not on disk, logging how many (the metadata may list more)."""
        present = np.array([os.path.isfile(p) for p in self.paths], dtype=bool)
        if present.all():
            return self
        missing = [p for p, ok in zip(self.paths, present) if not ok]
        log.warning("%s: %d of %d listed images are not on disk (e.g. %s); they are left out",
                    self.name, len(missing), len(self.paths), ", ".join(missing[:3]))
        kept = self.subset(np.flatnonzero(present))
        kept.missing = self.missing + missing
        return kept


def _from_tag_lists(name: str, ids: list[str], paths: list[str], tags: list[list[str]],
                    labels: list[str] | None = None) -> Dataset:
    if labels is None:
        labels = sorted({t for ts in tags for t in ts})
    where = {t: j for j, t in enumerate(labels)}
    matrix = np.zeros((len(ids), len(labels)), dtype=bool)
    for i, ts in enumerate(tags):
        for t in ts:
            if t in where:
                matrix[i, where[t]] = True
    return Dataset(name, ids, paths, labels, matrix)


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise TagrankError(f"missing required file: {path}")
    return [line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines()]


# -- adapters --------------------------------------------------------------------------------------

def split_tags(value: str) -> list[str]:
    """Tags from one cell: separated by '|' or ',' if present, else by whitespace."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    value = str(value)
    parts = re.split(r"[|,]", value) if ("|" in value or "," in value) else value.split()
    return list(dict.fromkeys(p.strip() for p in parts if p.strip()))


def read_csv(root: Path, split: str) -> Dataset:
    """A CSV or Parquet table with ``path`` and ``tags`` columns; optional ``split`` and ``id`` columns.

    ``root`` is the table itself, or a folder holding ``metadata.csv``/``tags.csv``/``*.parquet``.
    Relative paths are relative to the table's folder.
    """
    import pandas as pd

    table = root
    if root.is_dir():
        candidates = [root / n for n in ("metadata.csv", "tags.csv", "metadata.parquet", "tags.parquet")]
        table = next((c for c in candidates if c.is_file()), None)
        if table is None:
            raise TagrankError(f"no metadata.csv, tags.csv or *.parquet table in {root}")
    if not table.is_file():
        raise TagrankError(f"dataset table not found: {table}")
    try:
        frame = pd.read_parquet(table) if table.suffix.lower() in (".parquet", ".pq") else \
            pd.read_csv(table, dtype=str, keep_default_na=False)
    except Exception as exc:
        raise TagrankError(f"cannot read dataset table {table}: {exc}") from None
    for column in ("path", "tags"):
        if column not in frame.columns:
            raise TagrankError(f"dataset table {table} has no '{column}' column")
    if "split" in frame.columns and split != "all":
        frame = frame[frame["split"].astype(str) == split]
        if frame.empty:
            raise TagrankError(f"dataset table {table} has no rows with split == {split!r}")
    base = table.parent
    paths = [str(p if os.path.isabs(p) else base / p) for p in frame["path"].astype(str)]
    ids = frame["id"].astype(str).tolist() if "id" in frame.columns else frame["path"].astype(str).tolist()
    return _from_tag_lists("csv", ids, paths, [split_tags(v) for v in frame["tags"]])


def read_folder(root: Path, split: str) -> Dataset:
    """A folder of images named ``id-tag1_tag2.jpg`` (recursed); a ``train``/``test`` subfolder picks the split."""
    if not root.is_dir():
        raise TagrankError(f"dataset folder not found: {root}")
    if split in ("train", "test") and (root / split).is_dir():
        root = root / split
    files = sorted(f for f in root.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
    ids, paths, tags = [], [], []
    for f in files:
        image_id, sep, rest = f.stem.partition("-")
        if not sep or not rest:
            log.warning("skipping %s: name is not id-tag1_tag2", f)
            continue
        ids.append(image_id)
        paths.append(str(f))
        tags.append([t for t in rest.split("_") if t])
    if not ids:
        raise TagrankError(f"no images named id-tag1_tag2.ext in {root}")
    return _from_tag_lists("folder", ids, paths, tags)


def read_corel5k(root: Path, split: str) -> Dataset:
    """Corel5k in its public layout: ``labels/words``, ``labels/{training,test}_label`` (1-based ids)."""
    words = [w for w in _read_lines(root / "labels" / "words") if w]
    files = {"train": ["training_label"], "test": ["test_label"], "all": ["training_label", "test_label"]}[split]
    ids, paths, tags = [], [], []
    for name in files:
        folder = "train" if name == "training_label" else "test"
        for line in _read_lines(root / "labels" / name):
            parts = line.split()
            if not parts:
                continue
            try:
                indices = [int(x) for x in parts[1:]]
            except ValueError:
                raise TagrankError(f"{root / 'labels' / name}: bad line {line!r}") from None
            if any(not 1 <= k <= len(words) for k in indices):
                raise TagrankError(f"{root / 'labels' / name}: word index out of range in {line!r}")
            ids.append(parts[0])
            paths.append(str(root / "images" / folder / f"{parts[0]}.jpeg"))
            tags.append([words[k - 1] for k in indices])
    return _from_tag_lists("corel5k", ids, paths, tags, labels=words)


def read_nuswide(root: Path, split: str) -> Dataset:
    """NUS-WIDE in its official layout. Labels: the 81 concepts, plus the 1k tags where ``*_Tags1k.dat`` exist.

    ``ImageList/{Train,Test}Imagelist.txt`` entries are ``folder\\file.jpg`` (backslashes) and map to
    ``Flickr/folder/file.jpg``; ground truth files hold one value per image, anything but ``1`` is 0.
    """
    if split == "all":
        parts = [read_nuswide(root, "train"), read_nuswide(root, "test")]
        return Dataset("nuswide", parts[0].ids + parts[1].ids, parts[0].paths + parts[1].paths, parts[0].labels,
                       np.concatenate([parts[0].matrix, parts[1].matrix]), concepts=parts[0].concepts)
    suffix = {"train": "Train", "test": "Test"}[split]
    concepts = [c for c in _read_lines(root / "ConceptsList" / "Concepts81.txt") if c]
    listing = root / "ImageList" / f"{suffix}Imagelist.txt"
    first = _read_lines(root / "Groundtruth" / "TrainTestLabels" / f"Labels_{concepts[0]}_{suffix}.txt")
    if listing.is_file():
        ids = [e.replace("\\", "/") for e in _read_lines(listing) if e]
        paths = [str(root / "Flickr" / e) for e in ids]
    else:  # metadata-only copies lack the train list: labels (and label priors) still work, images do not
        log.info("%s not found: %s images are known by row number only", listing, split)
        ids = [f"{split}/{i}" for i in range(len([v for v in first if v]))]
        paths = ["" for _ in ids]
    columns = []
    for concept in concepts:
        values = _read_lines(root / "Groundtruth" / "TrainTestLabels" / f"Labels_{concept}_{suffix}.txt")
        if len(values) < len(ids) or any(values[len(ids):]):
            raise TagrankError(f"Labels_{concept}_{suffix}.txt has {len(values)} lines for {len(ids)} images in {listing}")
        columns.append(np.array([v == "1" for v in values[:len(ids)]], dtype=bool))
    labels, matrix = list(concepts), np.stack(columns, axis=1)
    tags_file = root / "NUS_WID_Tags" / f"{suffix}_Tags1k.dat"
    tag_list = root / "NUS_WID_Tags" / "TagList1k.txt"
    if tags_file.is_file() and tag_list.is_file():
        tag_names = [t for t in _read_lines(tag_list) if t]
        tags = np.loadtxt(tags_file, dtype=np.int8).astype(bool)
        if tags.shape != (len(ids), len(tag_names)):
            raise TagrankError(f"{tags_file} is {tags.shape[0]}x{tags.shape[1]}, expected {len(ids)}x{len(tag_names)}")
        extra = [j for j, t in enumerate(tag_names) if t not in set(concepts)]
        labels += [tag_names[j] for j in extra]
        matrix = np.concatenate([matrix, tags[:, extra]], axis=1)
    return Dataset("nuswide", ids, paths, labels, matrix, concepts=list(concepts))


DATASETS: dict[str, Callable[[Path, str], Dataset]] = {
    "csv": read_csv,
    "folder": read_folder,
    "corel5k": read_corel5k,
    "nuswide": read_nuswide,
}


def load_dataset(name: str, root: str | os.PathLike, split: str = "train") -> Dataset:
    """Read dataset ``name`` at ``root``; ``split`` is ``train``, ``test`` or ``all``."""
    if name not in DATASETS:
        raise TagrankError(f"unknown dataset {name!r} (choose from {', '.join(DATASETS)})")
    if split not in ("train", "test", "all"):
        raise TagrankError(f"unknown split {split!r} (train, test or all)")
    root = Path(root)
    if not root.exists():
        raise TagrankError(f"dataset root not found: {root}")
    return DATASETS[name](root, split)


# -- tag filters -----------------------------------------------------------------------------------

def read_tag_list(path: str | os.PathLike) -> list[str]:
    """A list of tags (the unseen split, an exclude list): one per line, like a vocabulary."""
    from tagrank.vocab import read_vocabulary

    return read_vocabulary(path)


def resolve_labels(names: list[str], labels: list[str]) -> tuple[list[str], list[str]]:
    """Map tag names onto the label set (exact, else case-insensitive): ``(found labels, unknown names)``."""
    exact = set(labels)
    folded = {label.casefold(): label for label in labels}
    out, unknown = [], []
    for name in names:
        hit = name if name in exact else folded.get(name.casefold())
        (out.append(hit) if hit is not None else unknown.append(name))
    return out, unknown


def match_labels(names: list[str], labels: list[str], what: str) -> list[str]:
    """Map user-given tag names onto the label set; unknown names are an error naming ``what``."""
    out, unknown = resolve_labels(names, labels)
    if unknown:
        raise TagrankError(f"{what} names {len(unknown)} tag(s) not in the label set: "
                           f"{', '.join(map(repr, unknown[:10]))}{' ...' if len(unknown) > 10 else ''}")
    return list(dict.fromkeys(out))


def filter_tags(data: Dataset, min_images: int = 1, drop_digits: bool = False, exclude: list[str] | None = None,
                unseen: list[str] | None = None) -> Dataset:
    """The training label set: unseen and excluded tags removed, rare and digit tags dropped.

    Images left with no label are dropped too (they give the ranking losses nothing to learn).
    """
    removed = set(match_labels(unseen or [], data.labels, "the unseen list"))
    removed |= set(match_labels(exclude or [], data.labels, "the exclude list"))
    counts = data.matrix.sum(axis=0)
    keep = [label for j, label in enumerate(data.labels)
            if label not in removed and counts[j] >= min_images and not (drop_digits and re.search(r"\d", label))]
    if not keep:
        raise TagrankError(f"{data.name}: no training labels left after filtering")
    out = data.select_labels(keep)
    has_label = out.matrix.any(axis=1)
    if not has_label.all():
        log.info("%s: %d images have no training label left and are not used", data.name, int((~has_label).sum()))
        out = out.subset(np.flatnonzero(has_label))
    return out
