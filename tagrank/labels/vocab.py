"""Vocabularies: the tags a user wants ranked.

A vocabulary is one tag per line (UTF-8, blank lines ignored, duplicates dropped with a warning), or a
CSV/Parquet file with a ``tag`` column. Lines are tags verbatim: ``#sunset`` is a hashtag, not a comment.
Named vocabularies live in the repository's top-level ``vocab/`` folder and ship with the package (a wheel holds
them as ``tagrank/vocabularies/NAME.txt``, copied there by setup.py): ``everyday`` (the
default, derived from the Recognize Anything tag list and the datasets' class names by
``scripts/make_vocab.py``), ``nuswide1k``, ``nuswide81``, ``corel5k``.
"""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

from typing import Callable

from tagrank._log import log
from tagrank.errors import TagrankError, os_reason


def _named_folder() -> Path:
    """Where the named vocabularies are: an installed package's copy, else a source checkout's ``vocab/``."""
    installed = Path(__file__).resolve().parents[1] / "vocabularies"
    return installed if installed.is_dir() else Path(__file__).resolve().parents[2] / "vocab"


NAMED = _named_folder()
DEFAULT_VOCABULARY = "everyday"


def named_vocabularies() -> list[str]:
    return sorted(p.stem for p in NAMED.glob("*.txt"))


def load_vocabulary(spec: str | os.PathLike) -> list[str]:
    """A named vocabulary (``everyday``, ``nuswide1k``, ...) or a vocabulary file by path."""
    name = str(spec)
    if name in named_vocabularies() and not Path(name).exists():
        return read_vocabulary(NAMED / f"{name}.txt")
    if not Path(name).exists() and os.sep not in name and "." not in name:
        raise TagrankError(f"unknown vocabulary {name!r}: a file path, or one of {', '.join(named_vocabularies())}")
    return read_vocabulary(name)


def merge_duplicates(tags: list[str], normalise: Callable[[str], str], where: str = "vocabulary") -> list[str]:
    """Tags that normalise alike (``beach``, ``Beach``, ``#beach``) as one, the first spelling kept, with a warning."""
    kept: dict[str, str] = {}
    merged: list[tuple[str, str]] = []
    for tag in tags:
        key = normalise(tag)
        if key in kept:
            merged.append((tag, kept[key]))
        else:
            kept[key] = tag
    if merged:
        shown = ", ".join(f"{t!r} -> {k!r}" for t, k in merged[:10]) + (" ..." if len(merged) > 10 else "")
        log.warning("%s: merged %d tag(s) that normalise to another's form: %s", where, len(merged), shown)
    return list(kept.values())


def read_vocabulary(path: str | os.PathLike) -> list[str]:
    """Tags from a ``.txt``/``.csv``/``.parquet`` vocabulary, in file order, duplicates dropped."""
    path = Path(path)
    if path.is_dir():
        raise TagrankError(f"vocabulary {path} is a folder: give a .txt, .csv or .parquet file")
    if not path.exists():
        raise TagrankError(f"vocabulary file not found: {path}")
    if not path.is_file():
        raise TagrankError(f"vocabulary {path} is not a regular file")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".parquet", ".pq"):
        raw = _read_tag_column(path, suffix)
    else:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise TagrankError(f"cannot read vocabulary {path}: {os_reason(exc)}") from None
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise TagrankError(f"vocabulary is not UTF-8: {path} (bad byte at offset {exc.start})") from None
        raw = text.splitlines()
    return clean_tags(raw, str(path))


def clean_tags(raw: list, where: str = "vocabulary") -> list[str]:
    """Strip, NFC-normalise and de-duplicate tags; an empty result is an error naming ``where``."""
    tags: list[str] = []
    seen: set[str] = set()
    duplicates: list[str] = []
    for item in raw:
        if item is None:
            continue
        tag = unicodedata.normalize("NFC", str(item)).strip()
        if not tag:
            continue
        if tag in seen:
            duplicates.append(tag)
            continue
        seen.add(tag)
        tags.append(tag)
    if duplicates:
        shown = ", ".join(repr(t) for t in duplicates[:10]) + (" ..." if len(duplicates) > 10 else "")
        log.warning("%s: dropped %d duplicate tag(s): %s", where, len(duplicates), shown)
    if not tags:
        raise TagrankError(f"empty vocabulary: {where}")
    return tags


def _read_tag_column(path: Path, suffix: str) -> list:
    import pandas as pd

    try:
        frame = pd.read_parquet(path) if suffix != ".csv" else pd.read_csv(path, dtype=str, keep_default_na=False)
    except UnicodeDecodeError:
        raise TagrankError(f"vocabulary is not UTF-8: {path}") from None
    except Exception as exc:
        raise TagrankError(f"cannot read vocabulary {path}: {exc}") from None
    if "tag" not in frame.columns:
        raise TagrankError(f"vocabulary {path} has no 'tag' column (columns: {', '.join(map(str, frame.columns))})")
    return [None if pd.isna(tag) else tag for tag in frame["tag"]]  # an empty cell is no tag, not "nan"
