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
from tagrank.errors import TagrankError, os_reason
from tagrank.labels.index import check_vector_match
from tagrank.methods import Method, get_method

WEIGHTS = "model.safetensors"
REFERENCE_PHOTOS = "reference_photos"
"""The weights file's tensor of reference photos' features (TaggingModel.reference_photos)."""
DESCRIPTION = "model.json"
FORMAT = "tagrank-model/1"
HALF = "float16"  # model.json "weights_dtype": the file stores the float weights as float16
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
    except OSError as exc:
        raise TagrankError(f"cannot read {path}: {os_reason(exc)}") from None
    what = f"{path} is not a safetensors model file"
    if len(data) < 8:
        raise TagrankError(f"{what} ({'empty' if not data else f'{len(data)} bytes'})")
    try:
        size = struct.unpack("<Q", data[:8])[0]
        if size > len(data) - 8:
            raise ValueError(f"its header claims {size} bytes, the file has {len(data) - 8}")
        header = json.loads(data[8:8 + size].decode("utf-8"))
        meta = json.loads(header.get("__metadata__", {}).get(META_KEY, "{}"))
        return load(data), meta
    except (SafetensorError, ValueError, UnicodeDecodeError, AttributeError, struct.error) as exc:
        # Asked only of a file that failed to parse: a safetensors header of 128 (mod 256) bytes starts with
        # 0x80 too, as a pickle does.
        if data[:1] == b"\x80" or data[:2] == b"PK":  # a pickle, or torch.save's zip of pickles
            raise TagrankError(f"{what} (it looks like a pickle or torch.save file, which tagrank never loads)") from None
        raise TagrankError(f"{what} ({exc})") from None


REQUIRED = {"method": str, "options": dict, "feature_dim": int, "dim": int, "labels": list, "backbone": dict,
            "vector_source": str}
"""Fields of a model description that loading needs, with their types."""


def check_description(meta: dict, where: Path) -> None:
    """Refuse a description that lacks a field loading needs, or has one of the wrong type."""
    for name, kind in REQUIRED.items():
        if name not in meta:
            raise TagrankError(f"{where}: the model description lacks the field {name!r}")
        if not isinstance(meta[name], kind):
            raise TagrankError(f"{where}: the model description's field {name!r} is a {type(meta[name]).__name__}, "
                               f"not a {kind.__name__}")
    if "name" not in meta["backbone"]:
        raise TagrankError(f"{where}: the model description's field 'backbone' lacks 'name'")


def _mismatch(exc: RuntimeError) -> str:
    """The first specific line of load_state_dict's error: which tensor, which sizes."""
    lines = [line.strip() for line in str(exc).splitlines()[1:] if line.strip()]
    return lines[0].rstrip(".") if lines else str(exc).splitlines()[0]


class TaggingModel:
    """A trained method with its description: labels, vectors, backbone and config it was made with."""

    def __init__(self, method: Method, meta: dict, directory: Path | None = None,
                 backbone_state: dict[str, torch.Tensor] | None = None,
                 reference_photos: torch.Tensor | None = None):
        self.method = method.eval()
        self.meta = meta
        self.directory = directory
        self.backbone_state = backbone_state  # the CNN's own weights when it was finetuned
        # features (float16) of some training photos: each tag's usual relevance (tagrank.ranking.confidence)
        self.reference_photos = reference_photos

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

    def round_to_half(self) -> None:
        """Round the float weights to float16's precision, and store them so (half the file), computing in
        float32 as before: what is evaluated after this is exactly what loads from the file."""
        with torch.no_grad():
            for tensor in self.method.state_dict().values():
                if tensor.dtype == torch.float32:
                    tensor.copy_(tensor.half().float())
        self.meta["weights_dtype"] = HALF

    def save(self, directory: str | os.PathLike) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = dict(self.meta, format=FORMAT, tagrank_version=__version__)
        tensors = dict(self.method.state_dict())
        if meta.get("weights_dtype") == HALF:
            tensors = {k: v.half() if v.dtype == torch.float32 else v for k, v in tensors.items()}
        tensors.update({f"backbone.{k}": v for k, v in (self.backbone_state or {}).items()})
        if self.reference_photos is not None:
            tensors[REFERENCE_PHOTOS] = self.reference_photos
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
        check_description(meta, weights)
        method_cls = get_method(meta["method"])
        from tagrank.config import fill

        options = fill(method_cls.Options, meta["options"], "method")
        method = method_cls(options, meta["feature_dim"], meta["dim"], len(meta["labels"]))
        backbone_state = {k[9:]: v for k, v in tensors.items() if k.startswith("backbone.")} or None
        reference_photos = tensors.pop(REFERENCE_PHOTOS, None)
        if reference_photos is not None and (reference_photos.ndim != 2 or reference_photos.shape[1] != meta["feature_dim"]):
            raise TagrankError(f"{weights} does not fit its description: {REFERENCE_PHOTOS} has shape "
                               f"{tuple(reference_photos.shape)}, not (photos, {meta['feature_dim']})")
        expected = method.state_dict()
        if meta.get("weights_dtype") == HALF:  # stored as float16 (TrainConfig.half_weights), computed in float32
            tensors = {k: v.float() if v.dtype == torch.float16 and k in expected and expected[k].dtype == torch.float32
                       else v for k, v in tensors.items()}
        for name, tensor in tensors.items():
            if name in expected and tensor.dtype != expected[name].dtype:
                raise TagrankError(f"{weights} does not fit its description: {name} is {tensor.dtype}, the model "
                                   f"holds {expected[name].dtype} (an edited or converted file)")
            if tensor.is_floating_point() and not torch.isfinite(tensor).all():
                raise TagrankError(f"{weights}: {name} holds NaN or infinite values (a diverged or damaged model)")
        try:
            method.load_state_dict({k: v for k, v in tensors.items() if not k.startswith("backbone.")}, assign=True)
        except RuntimeError as exc:
            raise TagrankError(f"{weights} does not fit its description: {_mismatch(exc)}") from None
        return cls(method, meta, directory, backbone_state, reference_photos)
