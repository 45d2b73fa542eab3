"""What every label encoder shares: tag normalisation, the OOV report, and the ``encode`` interface.

A label encoder turns tags into d-dimensional vectors. tagrank ranks any vocabulary because every tag
is a point in one encoder's space; models and label indexes record which encoder (``source``,
``checksum``, ``dim``) so that vectors from another never mix with them.

Subclasses say how one tag is looked up (:meth:`LabelEncoder.lookup`: the tokens it will use, none
when the encoder truly has no vector for it) and how looked-up tags become vectors
(:meth:`LabelEncoder.encode_entries`, batched). Everything else is here.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import numpy as np

from tagrank._log import log
from tagrank.errors import TagrankError

def strip_tag(tag: str) -> str:
    """A tag as typed, minus surrounding space and a leading '#': the form looked up first."""
    return tag.strip().lstrip("#").strip()


def normalise_tag(tag: str, lowercase: bool = True) -> str:
    """Canonical form of a user tag: NFKC, no leading '#', '_' and whitespace runs as one space.

    Case is folded only where the encoder is lowercase (GloVe, the subword encoders); case-sensitive
    vectors (GoogleNews) keep it, and their lookup falls back to the lowercase form.
    """
    s = strip_tag(unicodedata.normalize("NFKC", tag))
    s = re.sub(r"[\s_]+", " ", s)
    return s.casefold() if lowercase else s


@dataclass(frozen=True)
class TagVector:
    """How one tag was embedded: the tokens used (empty when OOV)."""

    tag: str
    normalised: str
    tokens: tuple[str, ...]

    @property
    def in_vocab(self) -> bool:
        return bool(self.tokens)


@dataclass
class Embedded:
    """The vectors of a list of tags; ``matrix`` has one row per in-vocabulary tag, in order."""

    entries: list[TagVector]
    matrix: np.ndarray

    @property
    def tags(self) -> list[str]:
        return [e.tag for e in self.entries if e.in_vocab]

    @property
    def oov(self) -> list[str]:
        return [e.tag for e in self.entries if not e.in_vocab]


class LabelEncoder:
    """Tags -> vectors, with where they came from (``source``, ``checksum``) for manifest checks."""

    source: str  # the name (registered encoders) or file path recorded in models and indexes
    checksum: str  # of the files the vectors come from
    lowercase: bool = True  # tags are case-folded before the look-up

    @property
    def dim(self) -> int:
        raise NotImplementedError

    @property
    def version(self) -> str:
        """The version of the package the encoder's files come from ('' for a user's file)."""
        return ""

    def describe(self) -> dict:
        """What models and label indexes record about the encoder."""
        return {"name": self.source, "version": self.version, "dim": self.dim, "checksum": self.checksum}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.source!r}, dim={self.dim})"

    # -- what subclasses provide -------------------------------------------------------------------

    def lookup(self, tag: str) -> TagVector:
        """The tokens one tag is embedded from; none when the encoder has no vector for it."""
        raise NotImplementedError

    def encode_entries(self, entries: list[TagVector]) -> np.ndarray:
        """(n, d) float32 vectors of in-vocabulary entries, in order."""
        raise NotImplementedError

    # -- shared ------------------------------------------------------------------------------------

    def normalise(self, tag: str) -> str:
        return normalise_tag(tag, self.lowercase)

    def vector(self, entry: TagVector) -> np.ndarray:
        return self.encode_entries([entry])[0]

    def warn_oov(self, oov: list[str], total: int) -> None:
        log.warning("%d of %d tags not in the vectors (%s), left out: %s", len(oov), total, self.source, shown_tags(oov))

    def encode(self, tags: list[str]) -> np.ndarray:
        """(V, d) vectors of ``tags``; a tag without a vector is an error naming it."""
        return self.embed(tags, strict=True).matrix

    def embed(self, tags: list[str], strict: bool = False) -> Embedded:
        """Vectors for ``tags``. OOV tags are logged by name; ``strict`` makes any OOV an error."""
        entries = [self.lookup(t) for t in tags]
        oov = [e.tag for e in entries if not e.in_vocab]
        kept = [e for e in entries if e.in_vocab]
        if oov:
            shown = shown_tags(oov)
            if not kept:
                raise TagrankError(f"none of the {len(tags)} tags is in the vectors ({self.source}): {shown}")
            if strict:
                raise TagrankError(f"{len(oov)} tag(s) not in the vectors ({self.source}): {shown}")
            self.warn_oov(oov, len(tags))
        matrix = self.encode_entries(kept) if kept else np.zeros((0, self.dim), np.float32)
        return Embedded(entries, np.asarray(matrix, dtype=np.float32))


def shown_tags(tags: list[str], limit: int = 20) -> str:
    """The first ``limit`` tags quoted, and how many more."""
    return ", ".join(repr(t) for t in tags[:limit]) + (f" and {len(tags) - limit} more" if len(tags) > limit else "")
