"""Make torchvision (and so timm) importable beside a CPU-only torch.

The torchvision wheel that matches torch 2.13 is a CUDA build; next to the CPU torch its C++ extension
``torchvision/_C.so`` fails to load, and ``import torchvision`` then dies in ``_meta_registrations`` with
"operator torchvision::nms does not exist" because it registers fake kernels for ops nobody declared.

tagrank uses none of those detection ops (nms, roi_align, ...). Declaring their schemas through
``torch.library`` is enough for the import to succeed; calling one still raises torch's own "no kernel"
error. Where the extension loads normally this module changes nothing.

Call :func:`ensure_torchvision_importable` before any torchvision or timm import.
"""

from __future__ import annotations

import glob
import importlib.util
import os

import torch

# Schemas as torchvision 0.28 declares them (torchvision/csrc/ops/*.cpp). Only ops that torchvision's
# Python side touches at import time need to exist; the rest are declared so that code probing for
# them sees the same names as with a working extension.
_TORCHVISION_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}

_library: torch.library.Library | None = None  # kept alive: dropping it would undeclare the ops


def _extension_loads(package_dir: str) -> bool:
    for path in glob.glob(os.path.join(package_dir, "_C*.so")) + glob.glob(os.path.join(package_dir, "_C*.pyd")):
        try:
            torch.ops.load_library(path)
            return True
        except (OSError, RuntimeError):
            return False
    return False


def ensure_torchvision_importable() -> bool:
    """Declare torchvision's missing ops if its extension cannot load. Returns True if it declared any."""
    global _library
    if _library is not None:
        return True
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return False  # torchvision not installed: nothing to fix
    if _extension_loads(spec.submodule_search_locations[0]):
        return False
    missing = {name: schema for name, schema in _TORCHVISION_SCHEMAS.items()
               if not hasattr(torch.ops.torchvision, name)}
    if not missing:
        return False
    _library = torch.library.Library("torchvision", "FRAGMENT")
    for schema in missing.values():
        _library.define(schema)
    return True
