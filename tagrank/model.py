"""Saved models: ``model.safetensors`` + ``model.json``, never pickle.

The safetensors file carries the weights *and* the model description in its metadata, so one atomic
rename publishes both; ``model.json`` is the same description for people and tools to read. Loading
rebuilds the method from the registry and its options, and refuses word vectors other than the
model's own.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load, save

from tagrank import __version__
from tagrank.atomic import atomic_file, write_text_atomic
from tagrank.errors import TagrankError
from tagrank.label_index import check_vector_match
from tagrank.methods import Method, get_method

WEIGHTS = "model.safetensors"
DESCRIPTION = "model.json"
FORMAT = "tagrank-model/1"
META_KEY = "tagrank"


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Write tensors with a JSON description in the safetensors metadata, atomically."""
    contiguous = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    data = save(contiguous, metadata={META_KEY: json.dumps(meta, ensure_ascii=False)})
    with atomic_file(path) as f:
        f.write(data)


def load_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    import struct

    try:
        data = path.read_bytes()
        header = json.loads(data[8:8 + struct.unpack("<Q", data[:8])[0]])
        meta = json.loads(header.get("__metadata__", {}).get(META_KEY, "{}"))
        return load(data), meta
    except (SafetensorError, OSError, ValueError, struct.error) as exc:
        raise TagrankError(f"cannot read {path}: {exc}") from None


class TaggingModel:
    """A trained method with its description: labels, vectors, backbone and config it was made with."""

    def __init__(self, method: Method, meta: dict, directory: Path | None = None,
                 backbone_state: dict[str, torch.Tensor] | None = None):
        self.method = method.eval()
        self.meta = meta
        self.directory = directory
        self.backbone_state = backbone_state  # the CNN's own weights when it was finetuned

    @property
    def name(self) -> str:
        return self.meta["method"]

    @property
    def labels(self) -> list[str]:
        """The training labels, in the order of label-scoring heads' outputs."""
        return list(self.meta["labels"])

    @property
    def backbone(self) -> str:
        return self.meta["backbone"]["name"]

    @property
    def vector_source(self) -> str:
        return self.meta["vector_source"]

    def check_vectors(self, vectors) -> None:
        check_vector_match(self.meta, vectors, f"model {self.directory or self.name}")

    def save(self, directory: str | os.PathLike) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = dict(self.meta, format=FORMAT, tagrank_version=__version__)
        tensors = dict(self.method.state_dict())
        tensors.update({f"backbone.{k}": v for k, v in (self.backbone_state or {}).items()})
        save_tensors(directory / WEIGHTS, tensors, meta)
        write_text_atomic(directory / DESCRIPTION, json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
        self.directory = directory
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "TaggingModel":
        directory = Path(directory)
        if not directory.is_dir():
            raise TagrankError(f"model directory not found: {directory}")
        weights = directory / WEIGHTS
        if not weights.is_file():
            raise TagrankError(f"model directory {directory} is missing {WEIGHTS}")
        tensors, meta = load_tensors(weights)
        if meta.get("format") != FORMAT:
            raise TagrankError(f"{weights} is not a tagrank model (no model description in its metadata)")
        method_cls = get_method(meta["method"])
        from tagrank.config import fill

        options = fill(method_cls.Options, meta["options"], "method")
        method = method_cls(options, meta["feature_dim"], meta["dim"], len(meta["labels"]))
        backbone_state = {k[9:]: v for k, v in tensors.items() if k.startswith("backbone.")} or None
        try:
            method.load_state_dict({k: v for k, v in tensors.items() if not k.startswith("backbone.")})
        except RuntimeError as exc:
            raise TagrankError(f"{weights} does not fit its description: {str(exc).splitlines()[0]}") from None
        return cls(method, meta, directory, backbone_state)
