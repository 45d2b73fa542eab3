"""Encoders side by side: ``wordllama+minilm`` gives each tag both encoders' vectors, concatenated.

Each part's vector is scaled to length 1/sqrt(n) first, so the joint vector has unit length and a cosine
in the joint space is the mean of the parts' cosines: neither encoder outweighs the other by its scale.
A tag has a vector when every part has one.
"""

from __future__ import annotations

import hashlib

import numpy as np

from tagrank.labels.encoders.base import LabelEncoder, TagVector

SEPARATOR = "+"


class ConcatEncoder(LabelEncoder):
    """The unit vectors of several encoders, each weighted 1/sqrt(n), one after the other."""

    def __init__(self, parts: list[LabelEncoder]):
        if len(parts) < 2:
            raise ValueError("a concatenation needs at least two encoders")
        self.parts = list(parts)
        self.source = SEPARATOR.join(p.source for p in self.parts)
        self.checksum = hashlib.sha256("|".join(p.checksum for p in self.parts).encode()).hexdigest()[:24]
        self.lowercase = all(p.lowercase for p in self.parts)

    @property
    def dim(self) -> int:
        return sum(p.dim for p in self.parts)

    @property
    def version(self) -> str:
        return SEPARATOR.join(p.version for p in self.parts)

    def lookup(self, tag: str) -> TagVector:
        norm = self.normalise(tag)
        known = all(p.lookup(tag).in_vocab for p in self.parts)
        return TagVector(tag, norm, (norm,) if known and norm else ())

    def encode_entries(self, entries: list[TagVector]) -> np.ndarray:
        if not entries:
            return np.zeros((0, self.dim), np.float32)
        blocks = []
        for part in self.parts:
            vectors = part.encode_entries([part.lookup(e.tag) for e in entries])
            lengths = np.linalg.norm(vectors, axis=1, keepdims=True)
            blocks.append(vectors / np.maximum(lengths, 1e-12) / np.sqrt(len(self.parts)))
        return np.concatenate(blocks, axis=1).astype(np.float32)
