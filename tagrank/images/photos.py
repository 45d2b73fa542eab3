"""Decoding photos safely, and finding them on disk.

One bad file never stops a run of thousands: :func:`load_image` raises :class:`ImageError` naming the
path, and callers skip it, report it, and carry on.
"""

from __future__ import annotations

import errno
import glob
import os
import re
import stat
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageFile, ImageOps

from tagrank.errors import os_reason, TagrankError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".heic", ".heif"}
HEIF_SUFFIXES = {".heic", ".heif"}  # iPhone photos: decoded by pillow-heif (pip install 'tagrank[heic]')
MAX_PIXELS = 100_000_000
"""Decompression-bomb limit: larger images are rejected (PIL's own default warns at 89M, errors at 179M)."""

ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is an error, not a grey-bottomed photo


class ImageError(TagrankError):
    """One image could not be decoded; the message names its path."""


def _heif_support() -> bool:
    """Register pillow-heif's HEIC/HEIF opener with PIL, once; False when it is not installed."""
    if not hasattr(_heif_support, "available"):
        try:
            import pillow_heif

            pillow_heif.register_heif_opener()
            _heif_support.available = True
        except ImportError:
            _heif_support.available = False
    return _heif_support.available


def load_image(path: str | os.PathLike | BinaryIO, name: str | None = None,
               max_pixels: int | None = None, min_side: int | None = None) -> Image.Image:
    """Decode ``path`` (or an open binary file, e.g. an upload) to an 8-bit RGB image with its EXIF
    orientation applied; messages call it ``name`` (default: the path). Larger than ``max_pixels`` (default
    MAX_PIXELS): refused before decoding. ``min_side``: the shorter side the caller needs at most; a JPEG at
    least twice as large is decoded at a reduced scale by its DCT (a 12 MP photo in a quarter of the time),
    never below ``min_side``.

    Grayscale, palette, CMYK, 16-bit and alpha images are converted (alpha composited on white);
    missing, truncated, corrupt and oversized (decompression-bomb) files raise :class:`ImageError`.
    """
    label = name if name is not None else path
    max_pixels = max_pixels or MAX_PIXELS
    if isinstance(path, (str, os.PathLike)) and Path(path).suffix.lower() in HEIF_SUFFIXES and not _heif_support():
        raise ImageError(f"{label}: HEIC/HEIF photos need pillow-heif: pip install 'tagrank[heic]'")
    try:
        with warnings.catch_warnings():
            # PIL warns from 89.5 MP; tagrank's own documented limit (checked before decoding) decides.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                if im.width * im.height > max_pixels:
                    raise ImageError(f"{label}: image too large ({im.width}x{im.height} = "
                                     f"{im.width * im.height:,} pixels; the limit is {max_pixels:,})")
                short = min(im.size)
                if min_side and im.format == "JPEG" and short >= 2 * min_side:  # both sides stay >= the request
                    im.draft("RGB", (-(-im.width * min_side // short), -(-im.height * min_side // short)))
                im.load()
                im = ImageOps.exif_transpose(im)
                return _to_rgb(im)
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(f"{label}: file not found") from None
    except IsADirectoryError:
        raise ImageError(f"{label}: is a directory") from None
    except PermissionError:
        raise ImageError(f"{label}: permission denied") from None
    except OSError as exc:
        if exc.errno is not None:  # the operating system's failure (a link loop, an I/O error), not the image's
            raise ImageError(f"{label}: cannot read ({os_reason(exc)})") from None
        raise _undecodable(label, exc) from None
    except Image.DecompressionBombError as exc:  # PIL refuses beyond 179 MP before tagrank sees the size
        size = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = f"{int(size.group(1)):,} pixels" if size else "too many pixels"
        raise ImageError(f"{label}: image too large ({pixels}; the limit is {MAX_PIXELS:,})") from None
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError... for broken files
        raise _undecodable(label, exc) from None


def _undecodable(label, exc: Exception) -> ImageError:
    # PIL names an open file by its repr (<_io.BytesIO object at 0x...>): the label already says which one
    reason = re.sub(r" ?<_io\.[A-Za-z]+ object at 0x[0-9a-f]+>", "", str(exc))
    return ImageError(f"{label}: cannot decode image ({reason})")


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit grayscale: scale to 8 bits by the image's own range, not by clipping at 255
        arr = np.asarray(im, dtype=np.float64)
        hi = arr.max() if arr.size else 1.0
        arr = arr / (hi if hi > 255 else 255.0) * 255.0
        im = Image.fromarray(arr.clip(0, 255).astype(np.uint8), "L")
    if im.mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        lo, hi = (arr.min(), arr.max()) if arr.size else (0.0, 1.0)
        im = Image.fromarray(((arr - lo) / max(hi - lo, 1e-12) * 255).astype(np.uint8), "L")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return im.convert("RGB")


def _reason(exc: OSError) -> str:
    """What went wrong reaching a path, in words a user expects (a symlink loop is not 'file not found')."""
    return {errno.ENOENT: "file not found", errno.EACCES: "permission denied", errno.EPERM: "permission denied",
            errno.ELOOP: "symlink loop", errno.ENAMETOOLONG: "name too long",
            errno.ENOTDIR: "a parent is not a directory"}.get(exc.errno, exc.strerror or str(exc))


def _walk(folder: Path, problems: list[str]) -> list[Path]:
    """Image files under ``folder``, sorted; every folder that cannot be listed is named in ``problems``."""
    found: list[Path] = []
    unreadable: list[str] = []
    visited: set[tuple[int, int]] = set()

    def report(exc: OSError) -> None:
        unreadable.append(f"{exc.filename}: cannot read folder ({_reason(exc)})")

    # Linked folders are followed (photo libraries are often assembled from links), each folder once.
    for parent, dirs, files in os.walk(folder, onerror=report, followlinks=True):
        try:
            st = os.stat(parent)
        except OSError as exc:
            report(exc)
            dirs.clear()
            continue
        if (st.st_dev, st.st_ino) in visited:
            dirs.clear()
            continue
        visited.add((st.st_dev, st.st_ino))
        dirs.sort()
        for name in files:
            file = Path(parent) / name
            if file.suffix.lower() in IMAGE_SUFFIXES:
                found.append(file)
    problems.extend(unreadable)
    if not found and not unreadable:
        problems.append(f"{folder}: no images in directory")
    return sorted(found)


def find_images(inputs: list[str | os.PathLike]) -> tuple[list[Path], list[str]]:
    """Expand files, directories (recursed, sorted) and globs into image paths.

    Returns ``(paths, problems)``: a named file that does not exist or cannot be reached, and a folder
    (or subfolder) that cannot be listed, are problems named in one line each, not exceptions, so the
    good inputs of the same run still get processed.
    """
    paths: list[Path] = []
    problems: list[str] = []
    for item in inputs:
        item = str(item)
        p = Path(item)
        try:
            mode = p.stat().st_mode
        except OSError as exc:
            if exc.errno == errno.ENOENT and glob.has_magic(item):
                matches = sorted(Path(m) for m in glob.glob(item, recursive=True)
                                 if Path(m).suffix.lower() in IMAGE_SUFFIXES and _is_file(Path(m)))
                if not matches:
                    problems.append(f"{item}: no images match")
                paths.extend(matches)
            else:
                problems.append(f"{item}: {_reason(exc)}")
            continue
        if stat.S_ISDIR(mode):
            paths.extend(_walk(p, problems))
        else:
            paths.append(p)
    return list(dict.fromkeys(paths)), problems


def _is_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except OSError:
        return False
