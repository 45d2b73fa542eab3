"""A small on-disk cache of arrays (vocabulary vectors, label spaces) that never trusts what it reads.

An entry is one safetensors file named by a key of what it was computed from. Its metadata records each
array's shape and CRC-32, and what the caller wants to check (an encoder's checksum, the tags); a read that
finds a missing, damaged, edited or foreign entry (wrong width, NaN, flipped bytes) returns None and the
caller computes and writes it again. Writes are atomic and the folder keeps its newest entries only.
"""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path

import numpy as np

from tagrank._log import log
from tagrank.atomic import atomic_file, keep_newest
from tagrank.errors import TagrankError


def _crc(array: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(array).view(np.uint8).reshape(-1))


def read_entry(path: str | os.PathLike, expect: dict) -> tuple[dict, dict[str, np.ndarray]] | None:
    """(metadata, arrays) of the entry at ``path`` if it is whole and its metadata holds ``expect``; else None."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="np") as f:
            meta = json.loads(f.metadata()["tagrank"])
            arrays = {name: f.get_tensor(name) for name in f.keys()}
        if any(meta.get(k) != v for k, v in expect.items()):
            raise ValueError("made from other inputs")
        if sorted(arrays) != sorted(meta["crc32"]):
            raise ValueError("arrays missing")
        for name, array in arrays.items():
            if _crc(array) != meta["crc32"][name]:
                raise ValueError(f"{name}: checksum differs")
            if array.dtype.kind == "f" and not np.isfinite(array).all():
                raise ValueError(f"{name}: not finite")
        return meta, arrays
    except FileNotFoundError:
        return None
    except Exception as exc:  # a damaged entry is rebuilt, never trusted
        log.debug("rebuilding cache entry %s: %s", path, exc)
        return None


def write_entry(path: str | os.PathLike, arrays: dict[str, np.ndarray], meta: dict, keep: int) -> None:
    """Write an entry atomically (a failure only costs the next run a recomputation); keep ``keep`` entries."""
    from safetensors.numpy import save

    arrays = {name: np.ascontiguousarray(array) for name, array in arrays.items()}
    meta = {**meta, "crc32": {name: _crc(array) for name, array in arrays.items()}}
    try:
        with atomic_file(Path(path)) as f:
            f.write(save(arrays, metadata={"tagrank": json.dumps(meta, ensure_ascii=False)}))
        keep_newest(Path(path).parent, "*.safetensors", keep)
    except (OSError, ValueError, TagrankError) as exc:  # ValueError: a tag that UTF-8 cannot hold
        log.debug("cache entry %s not written (%s)", path, exc)
