"""Where the backbone's forward pass runs when photos are tagged: torch, OpenVINO or ONNX Runtime.

OpenVINO (the ``openvino`` extra) and ONNX Runtime (the ``onnx`` extra) ship their CPU runtimes on PyPI and run
the same network about 3× and 2.5× as fast as torch on a CPU, with features within ~2e-5 of torch's and the
same tags (scripts/bench_backends.py). Each runs a converted copy of the network, converted once (a few
seconds) and kept in the cache folder, keyed by the backbone's signature and a checksum of its weights; it
starts per process in under half a second. So ``auto`` takes the fastest one installed for runs of
:data:`AUTO_MIN_PHOTOS` photos or more, where the saving outweighs the start; one photo is tagged by torch.
Training and the feature cache always use torch: cached features must not depend on what is installed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from tagrank.errors import TagrankError

RUNTIMES = {"openvino": ("openvino",), "onnxruntime": ("onnxruntime", "onnx")}
"""The runtimes besides torch, fastest first (auto's order), with the modules each needs."""
EXTRAS = {"openvino": "openvino", "onnxruntime": "onnx"}
AUTO_MIN_PHOTOS = 64
TRACE_SHAPE = (2, 3, 224, 288)  # any multiple of the stride: the export's pads are the same for all of them

Forward = Callable[[torch.Tensor], torch.Tensor]


def installed(runtime: str) -> bool:
    return all(importlib.util.find_spec(module) is not None for module in RUNTIMES[runtime])


def check_runtime(name: str, what: str = "--backend", auto: bool = True) -> str:
    """``name`` if it is a runtime that can run here (or "auto", where ``auto``), else a clear error naming
    ``what`` the caller calls it (an option, a config field)."""
    choices = ("auto", "torch", *RUNTIMES) if auto else ("torch", *RUNTIMES)
    if name not in choices:
        raise TagrankError(f"{what} must be one of {', '.join(choices)}, got {name!r}")
    if name in RUNTIMES and not installed(name):
        raise TagrankError(f"{what} is {name!r}, which is not installed: pip install 'tagrank[{EXTRAS[name]}]'")
    return name


def choose_runtime(name: str, photos: int) -> str:
    """The runtime ``name`` (auto, torch, openvino or onnxruntime) means for a run of ``photos`` photos."""
    check_runtime(name)
    if name == "auto":
        fastest = next((runtime for runtime in RUNTIMES if installed(runtime)), "torch")
        return fastest if photos >= AUTO_MIN_PHOTOS else "torch"
    return name


def runtime_forward(runtime: str, backbone, cache_dir: str | os.PathLike) -> Forward:
    """The backbone's forward pass on ``runtime`` ("openvino" or "onnxruntime")."""
    return {"openvino": openvino_forward, "onnxruntime": onnxruntime_forward}[runtime](backbone, cache_dir)


class _Network(torch.nn.Module):
    """The backbone's forward as one module for export: normalised NCHW photos -> features."""

    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.network_features(x)


def weights_checksum(backbone) -> str:
    """A short checksum of the backbone's weights (finetuned ones differ from the package's)."""
    digest = hashlib.sha256()
    for name, tensor in backbone.model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def openvino_forward(backbone, cache_dir: str | os.PathLike) -> Forward:
    """The backbone's forward compiled by OpenVINO for this machine's CPU (converted once, kept in ``cache_dir``
    in float32: OpenVINO's default float16 weights moved features by up to 0.05 and a tenth of the top-5 lists)."""
    import openvino

    path = _cached(backbone, cache_dir, "openvino", ".xml")
    core = openvino.Core()
    if path.is_file() and path.with_suffix(".bin").is_file():
        model = core.read_model(path)
    else:
        with _tracing():
            model = openvino.convert_model(_Network(backbone).eval(), example_input=torch.zeros(TRACE_SHAPE),
                                           input=[openvino.PartialShape([-1, 3, -1, -1])])
        with _staged(path) as staged:
            openvino.save_model(model, staged, compress_to_fp16=False)
            os.replace(staged.with_suffix(".bin"), path.with_suffix(".bin"))
    compiled = core.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": torch.get_num_threads()})
    return _on_stride(backbone, lambda x: compiled(x)[0])


def onnxruntime_forward(backbone, cache_dir: str | os.PathLike) -> Forward:
    """The backbone's forward in an ONNX Runtime session on this machine's CPU (exported once, kept in
    ``cache_dir``)."""
    import onnxruntime

    path = _cached(backbone, cache_dir, "onnx", ".onnx")
    if not path.is_file():
        with _tracing(), _staged(path) as staged:
            torch.onnx.export(_Network(backbone).eval(), (torch.zeros(TRACE_SHAPE),), str(staged),
                              input_names=["photos"], output_names=["features"], opset_version=17, dynamo=False,
                              dynamic_axes={"photos": {0: "batch", 2: "height", 3: "width"},
                                            "features": {0: "batch"}})
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return _on_stride(backbone, lambda x: session.run(None, {"photos": x})[0])


def _cached(backbone, cache_dir: str | os.PathLike, folder: str, suffix: str) -> Path:
    """Where a converted copy of ``backbone`` is kept: by its signature and a checksum of its weights."""
    return Path(cache_dir) / folder / f"{backbone.signature}-{weights_checksum(backbone)}{suffix}"


@contextmanager
def _tracing():
    """Gradient-free tracing, without the tracer's notes on Python numbers recorded as constants (the pads)."""
    import warnings

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        yield


@contextmanager
def _staged(path: Path):
    """A scratch path beside ``path``, moved onto it when the block ends: never half a network in the cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as scratch:
        staged = Path(scratch) / path.name
        yield staged
        os.replace(staged, path)


def _on_stride(backbone, run) -> Forward:
    """``run`` (a contiguous float32 NCHW array -> features array) as a forward pass; a photo whose sides are not
    multiples of the stride goes to torch (the converted pads hold for those only)."""
    def forward(x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % backbone.stride or x.shape[-2] % backbone.stride:
            return backbone(x)
        return torch.from_numpy(np.asarray(run(x.contiguous().numpy())))

    return forward
