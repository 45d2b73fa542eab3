"""WordLlama (``wordllama`` on PyPI, MIT): 256-d averages of 32,000 subword-token embeddings.

Every string has tokens, so every tag gets a vector: rare names ('affenpinscher'), phrases ('golf cart')
and hashtags ('#nofilter') alike. The wheel ships the token embeddings (``weights/*.safetensors``) and
the tokenizer (``tokenizers/*.json``); they are read from the package directly, as wordllama's own
``load()`` looks for a ``tokenizer/`` folder that the wheel lacks and would try to download.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tagrank.checksums import file_fingerprint
from tagrank.labels.encoders.base import LabelEncoder, TagVector
from tagrank.errors import TagrankError

NAME = "wordllama"
WEIGHTS = "weights/l2_supercat_256.safetensors"
TOKENIZER = "tokenizers/l2_supercat_tokenizer_config.json"


class WordLlamaEncoder(LabelEncoder):
    """Mean of a tag's subword-token embeddings (as wordllama's own average pooling)."""

    lowercase = True  # hashtags are typed in any case; 'SunSet' and 'sunset' should be one tag

    def __init__(self, embeddings: np.ndarray, tokenizer, checksum: str, version: str = ""):
        self.embeddings = embeddings
        self.tokenizer = tokenizer
        self.source = NAME
        self.checksum = checksum
        self._version = version

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])

    @property
    def version(self) -> str:
        return self._version

    @classmethod
    def load(cls) -> "WordLlamaEncoder":
        import importlib.util
        from importlib.metadata import version

        # Found, not imported: importing wordllama costs a second and turns on INFO logging for the whole
        # process (it calls logging.basicConfig), and its files are all this encoder reads.
        spec = importlib.util.find_spec("wordllama")
        if spec is None or not spec.submodule_search_locations:
            raise TagrankError("the wordllama encoder needs the package wordllama (pip install wordllama)")
        root = Path(next(iter(spec.submodule_search_locations))).resolve()
        return cls.from_files(root / WEIGHTS, root / TOKENIZER, version("wordllama"))

    @classmethod
    def from_files(cls, weights: Path, tokenizer: Path, version: str = "") -> "WordLlamaEncoder":
        """Token embeddings (a safetensors file with one (tokens, d) tensor) and a ``tokenizers`` JSON file."""
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        for path in (weights, tokenizer):
            if not path.is_file():
                raise TagrankError(f"wordllama file missing: {path}")
        tensors = load_file(str(weights))
        if len(tensors) != 1:
            raise TagrankError(f"{weights}: expected one embedding tensor, found {', '.join(tensors)}")
        embeddings = next(iter(tensors.values())).astype(np.float32)
        checksum = file_fingerprint(weights, file_fingerprint(tokenizer))
        return cls(embeddings, Tokenizer.from_file(str(tokenizer)), checksum, version)

    def lookup(self, tag: str) -> TagVector:
        norm = self.normalise(tag)
        ids = self.tokenizer.encode(norm, add_special_tokens=False).ids if norm else []
        return TagVector(tag, norm, tuple(str(i) for i in ids if 0 <= i < len(self.embeddings)))

    def encode_entries(self, entries: list[TagVector]) -> np.ndarray:
        rows = [self.embeddings[[int(t) for t in e.tokens]].mean(axis=0) for e in entries]
        return np.stack(rows).astype(np.float32) if rows else np.zeros((0, self.dim), np.float32)
