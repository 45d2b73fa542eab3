"""Datasets: one reader interface, one small adapter per layout.

Every reader returns a :class:`Dataset`: image ids and paths, the label set, and a boolean label
matrix. ``train``/``eval`` pick a reader by name (``csv``, ``folder``, ``corel5k``, ``nuswide``,
``imagefolder``, ``tinyimagenet``). Training-time tag filters (minimum images per tag, no digits, an
exclude list, the unseen split) live in :func:`filter_tags`; :func:`merge_datasets` joins several
datasets into one training mixture, where a label is *known* only for its own dataset's photos.
"""

from __future__ import annotations

import inspect
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from tagrank._log import log
from tagrank.errors import TagrankError
from tagrank.images.photos import IMAGE_SUFFIXES


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
    # Mixtures: known[i, j] is False where image i's dataset does not annotate label j (unknown, not
    # absent: never a negative). None: every label is known for every image.
    known: np.ndarray | None = None
    source: np.ndarray | None = None  # (N,) index of each image's dataset in a mixture
    aliases: dict[str, str] = field(default_factory=dict)  # other names of labels (WordNet ids -> names)

    def __len__(self) -> int:
        return len(self.ids)

    def tags_of(self, i: int) -> list[str]:
        return [self.labels[j] for j in np.flatnonzero(self.matrix[i])]

    def subset(self, rows: np.ndarray | list[int]) -> "Dataset":
        rows = np.asarray(rows, dtype=np.int64)
        return Dataset(self.name, [self.ids[i] for i in rows], [self.paths[i] for i in rows], list(self.labels),
                       self.matrix[rows], list(self.missing), self.concepts,
                       None if self.known is None else self.known[rows],
                       None if self.source is None else self.source[rows], dict(self.aliases))

    def select_labels(self, labels: list[str]) -> "Dataset":
        """The same images with only ``labels`` (which must all be in the label set), in that order."""
        where = {label: j for j, label in enumerate(self.labels)}
        unknown = [t for t in labels if t not in where]
        if unknown:
            raise TagrankError(f"{self.name}: labels not in the label set: {', '.join(map(repr, unknown[:10]))}")
        cols = [where[t] for t in labels]
        concepts = [c for c in self.concepts if c in set(labels)] if self.concepts else None
        return Dataset(self.name, list(self.ids), list(self.paths), list(labels), self.matrix[:, cols],
                       list(self.missing), concepts, None if self.known is None else self.known[:, cols],
                       self.source, {a: t for a, t in self.aliases.items() if t in set(labels)})

    def resolve_aliases(self, names: list[str]) -> list[str]:
        """Names with aliases replaced by their labels (an unseen list of WordNet ids, say)."""
        return [self.aliases.get(n, n) for n in names]

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


def _class_folder_images(folder: Path) -> list[Path]:
    return sorted(f for f in folder.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())


def _synset_names(path: Path) -> dict[str, str]:
    """``id<TAB>name, synonym, ...`` lines (WordNet's words.txt, a names file) -> id: first name."""
    names = {}
    for line in _read_lines(path):
        key, sep, value = line.partition("\t") if "\t" in line else line.partition(" ")
        if sep and value.strip():
            names[key.strip()] = value.split(",")[0].strip()
    return names


def _single_label(name: str, ids: list[str], paths: list[str], classes: list[str], names: dict[str, str],
                  labels_of: list[str]) -> Dataset:
    """One class per photo; labels are the classes' names, the class ids (folders, wnids) their aliases."""
    label = {c: names.get(c, c) for c in classes}
    duplicated = sorted({n for n in label.values() if list(label.values()).count(n) > 1})
    if duplicated:
        raise TagrankError(f"{name}: several classes share the name(s) {', '.join(map(repr, duplicated[:5]))}")
    data = _from_tag_lists(name, ids, paths, [[label[c]] for c in labels_of], [label[c] for c in classes])
    data.aliases = {c: label[c] for c in classes if c != label[c]}
    return data


def read_imagefolder(root: Path, split: str) -> Dataset:
    """One folder per class (``root/<class>/**/*.jpg``), as torchvision's ImageFolder.

    ``train/`` and ``val/`` (or ``test/``) subfolders pick the split when present. Class names are the
    folder names, or come from ``names.txt``/``words.txt`` in ``root`` (``folder<TAB>name, synonyms``:
    the first name is used).
    """
    if not root.is_dir():
        raise TagrankError(f"dataset folder not found: {root}")
    folder = root
    if split != "all":
        candidates = ["train"] if split == "train" else ["val", "test"]
        folder = next((root / c for c in candidates if (root / c).is_dir()), root)
    classes = sorted(d.name for d in folder.iterdir() if d.is_dir())
    names_file = next((root / n for n in ("names.txt", "words.txt") if (root / n).is_file()), None)
    names = _synset_names(names_file) if names_file else {}
    ids, paths, of = [], [], []
    for c in classes:
        for f in _class_folder_images(folder / c):
            ids.append(f"{c}/{f.stem}")
            paths.append(str(f))
            of.append(c)
    if not ids:
        raise TagrankError(f"no images in class folders under {folder}")
    return _single_label("imagefolder", ids, paths, [c for c in classes if c in set(of)], names, of)


def read_tinyimagenet(root: Path, split: str) -> Dataset:
    """Tiny ImageNet's own layout: ``train/<wnid>/images/*.JPEG``, ``val/images`` with
    ``val/val_annotations.txt``, class ids in ``wnids.txt`` and names in ``words.txt`` (first synonym).

    The labelled ``val`` photos are the ``test`` split (Tiny ImageNet's own test photos have no labels).
    """
    if split == "all":
        parts = [read_tinyimagenet(root, "train"), read_tinyimagenet(root, "test")]
        return Dataset("tinyimagenet", parts[0].ids + parts[1].ids, parts[0].paths + parts[1].paths, parts[0].labels,
                       np.concatenate([parts[0].matrix, parts[1].matrix]), aliases=parts[0].aliases)
    classes = [c for c in _read_lines(root / "wnids.txt") if c]
    names = _synset_names(root / "words.txt")
    ids, paths, of = [], [], []
    if split == "train":
        for c in classes:
            for f in _class_folder_images(root / "train" / c):
                ids.append(f.stem)
                paths.append(str(f))
                of.append(c)
    else:
        known = set(classes)
        for line in _read_lines(root / "val" / "val_annotations.txt"):
            parts = line.split("\t")
            if len(parts) < 2 or not parts[0]:
                continue
            if parts[1] not in known:
                raise TagrankError(f"{root / 'val' / 'val_annotations.txt'}: class {parts[1]!r} is not in wnids.txt")
            ids.append(Path(parts[0]).stem)
            paths.append(str(root / "val" / "images" / parts[0]))
            of.append(parts[1])
    return _single_label("tinyimagenet", ids, paths, classes, names, of)


KEYWORD_SOURCES = ("any", "sidecar", "xmp", "iptc")


def read_library(root: Path, split: str, keywords_from: str = "any") -> Dataset:
    """A person's photo library (``root`` recursed) labelled by the keywords they gave: a sidecar's
    (``NAME.EXT.xmp``, else ``NAME.xmp``) XMP ``dc:subject`` and the leaves of ``lr:hierarchicalSubject``, the
    photo's embedded XMP, its IPTC keywords; ``keywords_from`` picks one source (``any``: all of them). The
    keywords tagrank wrote itself are left out, and photos without keywords are skipped (and counted).
    The library has no split of its own: training holds out its validation photos."""
    from tagrank.keywords import read_keywords, sidecar_path

    if keywords_from not in KEYWORD_SOURCES:
        raise TagrankError(f"--keywords-from must be one of {', '.join(KEYWORD_SOURCES)}, got {keywords_from!r}")
    if not root.is_dir():
        raise TagrankError(f"photo library not found: {root}")
    files = sorted(f for f in root.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
    ids, paths, tags, unreadable = [], [], [], 0
    for f in files:
        found: list[str] = []
        sources = []
        if keywords_from in ("any", "sidecar"):
            sources += [s for s in (sidecar_path(f, "xmp"), sidecar_path(f, "lightroom")) if s.is_file()][:1]
        if keywords_from in ("any", "xmp", "iptc"):
            sources.append(f)
        for source in sources:
            try:
                read = read_keywords(source)
            except Exception:  # noqa: BLE001 - a file Exiv2 cannot read has no keywords for us
                unreadable += 1
                continue
            own = set(read["tagrank"])
            if keywords_from != "iptc":
                found += [k for k in read["subject"] if k not in own]
                found += [h.split("|")[-1] for h in read["hierarchical"] if not h.startswith("tagrank|")]
            if keywords_from in ("any", "iptc"):
                found += [k for k in read["iptc"] if k not in own]
        found = list(dict.fromkeys(k.strip() for k in found if k.strip()))
        if found:
            ids.append(str(f.relative_to(root)))
            paths.append(str(f))
            tags.append(found)
    skipped = len(files) - len(ids)
    if skipped:
        log.warning("%s: %d of %d photos have no keywords (from %s) and are left out%s", root, skipped, len(files),
                    keywords_from, f"; {unreadable} metadata file(s) could not be read" if unreadable else "")
    if not ids:
        raise TagrankError(f"no photo in {root} has keywords (from {keywords_from}): tag some in your photo manager")
    return _from_tag_lists("library", ids, paths, tags)


DATASETS: dict[str, Callable[..., Dataset]] = {
    "csv": read_csv,
    "folder": read_folder,
    "corel5k": read_corel5k,
    "nuswide": read_nuswide,
    "imagefolder": read_imagefolder,
    "tinyimagenet": read_tinyimagenet,
    "library": read_library,
}


def load_dataset(name: str, root: str | os.PathLike, split: str = "train", **options) -> Dataset:
    """Read dataset ``name`` at ``root``; ``split`` is ``train``, ``test`` or ``all``; ``options``: those of the
    config's ``[data]`` fields its reader takes (the library's ``keywords_from``), the rest ignored."""
    if name not in DATASETS:
        raise TagrankError(f"unknown dataset {name!r} (choose from {', '.join(DATASETS)})")
    if split not in ("train", "test", "all"):
        raise TagrankError(f"unknown split {split!r} (train, test or all)")
    root = Path(root)
    if not root.exists():
        raise TagrankError(f"dataset root not found: {root}")
    reader = DATASETS[name]
    takes = inspect.signature(reader).parameters
    return reader(root, split, **{k: v for k, v in options.items() if k in takes})


def merge_datasets(parts: list[Dataset], name: str = "mixture") -> Dataset:
    """One training set from several: the union of their labels (same name, same label), each image's
    labels *known* only where its own dataset annotates them, ``source`` saying which dataset it is from."""
    labels = list(dict.fromkeys(label for part in parts for label in part.labels))
    where = {label: j for j, label in enumerate(labels)}
    n = sum(len(part) for part in parts)
    matrix = np.zeros((n, len(labels)), dtype=bool)
    known = np.zeros((n, len(labels)), dtype=bool)
    start = 0
    for part in parts:
        rows = slice(start, start + len(part))
        cols = np.array([where[label] for label in part.labels], dtype=np.int64)
        matrix[rows, cols] = part.matrix
        part_known = np.ones(part.matrix.shape, bool) if part.known is None else part.known
        known[rows, cols] = part_known
        start += len(part)
    source = np.concatenate([np.full(len(part), i, dtype=np.int64) for i, part in enumerate(parts)])
    aliases = {a: t for part in parts for a, t in part.aliases.items()}
    return Dataset(name, [i for part in parts for i in part.ids], [p for part in parts for p in part.paths], labels,
                   matrix, [m for part in parts for m in part.missing], None, known, source, aliases)


# -- tag filters -----------------------------------------------------------------------------------

def read_tag_list(path: str | os.PathLike) -> list[str]:
    """A list of tags (the unseen split, an exclude list): one per line, like a vocabulary."""
    from tagrank.labels.vocab import read_vocabulary

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
