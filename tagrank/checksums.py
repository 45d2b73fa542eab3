"""Checksums of files: a full one where every byte must match, a sampled one for multi-GB inputs."""

from __future__ import annotations

import hashlib
import os
from typing import Sequence


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of the whole file (hex), read in 4 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def text_key(parts: Sequence[str]) -> str:
    """A short key (24 hex digits of sha256) naming a cache entry by ``parts`` (checksums, tags, ...)."""
    return hashlib.sha256("\0".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:24]


_FINGERPRINT_BLOCK = 1 << 20


def file_fingerprint(path: str | os.PathLike, extra: str = "") -> str:
    """A cheap content checksum: sha256 over the size and three 1 MiB samples of the file.

    Hashing a 3.6 GB GoogleNews file fully would cost seconds at every load; sampling catches a
    different or truncated file, which is what the check is for.
    """
    h = hashlib.sha256(extra.encode())
    size = os.path.getsize(path)
    h.update(str(size).encode())
    with open(path, "rb") as f:
        for offset in (0, max(0, size // 2 - _FINGERPRINT_BLOCK // 2), max(0, size - _FINGERPRINT_BLOCK)):
            f.seek(offset)
            h.update(f.read(_FINGERPRINT_BLOCK))
    return h.hexdigest()[:16]
