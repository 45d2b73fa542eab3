"""Atomic writes: an interrupted (even kill -9) run never leaves a half-written file or directory.

Everything is written under a temporary name beside its target and renamed into place; a rename within
one file system is atomic, so readers see the old complete version or the new complete version.

* Temporary names are ``.NAME.PID-XXXXXXXX.tmp``: the process that owns one is in its name, so the next
  write of the same target removes those whose process is gone (a kill -9 leaves them behind) and never
  touches one a live process is still writing.
* A directory replaces an older one by an atomic exchange (Linux ``renameat2``); where that is not
  available, by two renames, and a path left empty between them is restored from ``.NAME.PID-*.old``
  on the next use (:func:`recover`).
* A write that fails (a full disk, a read-only file system) becomes one :class:`TagrankError` naming
  what was being written; the previous version stays in place.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from tagrank.errors import SystemFailure, TagrankError, os_reason


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _prefix(path: Path) -> str:
    return f".{path.name}.{os.getpid()}-"


def _leftovers(path: Path, suffix: str) -> Iterator[tuple[Path, int]]:
    """Our temporary siblings of ``path`` with ``suffix`` and the process id in their names."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(\d+)-[^/]*{re.escape(suffix)}")
    with contextlib.suppress(OSError):
        for entry in os.scandir(path.parent):
            match = pattern.fullmatch(entry.name)
            if match:
                yield Path(entry.path), int(match.group(1))


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def clean_stale(path: str | os.PathLike) -> list[Path]:
    """Remove temporary files and folders that dead writes of ``path`` left behind; returns them."""
    path = Path(path)
    removed = []
    for leftover, pid in _leftovers(path, ".tmp"):
        if not _alive(pid):
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    leftover.unlink()
            removed.append(leftover)
    return removed


def recover(path: str | os.PathLike) -> bool:
    """Restore ``path`` from the copy a replacement set aside if it died between its two renames."""
    path = Path(path)
    if path.exists():
        return False
    for old, pid in sorted(_leftovers(path, ".old"), key=lambda item: item[0].stat().st_mtime, reverse=True):
        if not _alive(pid) and (old / "x").exists():
            os.replace(old / "x", path)
            shutil.rmtree(old, ignore_errors=True)
            return True
    return False


def _written(exc: OSError, inside: Path) -> bool:
    """True when ``exc`` came from writing our temporary output ``inside`` (not from reading some input)."""
    return exc.filename is None or Path(exc.filename) == inside or inside in Path(exc.filename).parents


def write_error(target: str | os.PathLike, exc: OSError) -> TagrankError:
    reason = "no space left on device" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else os_reason(exc)
    return SystemFailure(f"cannot write {target}: {reason}")


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "wb") -> Iterator:
    """Open a temporary file beside ``path``; on success fsync and rename it over ``path``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        clean_stale(path)
        fd, tmp = tempfile.mkstemp(prefix=_prefix(path), suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise write_error(path, exc) from None
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; the result should look like any written file
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and _written(exc, Path(tmp)):
            raise write_error(path, exc) from None
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path`` for a library to write (it may be left empty); on success it is
    fsync'd and renamed over ``path``, on failure removed."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        clean_stale(path)
        fd, name = tempfile.mkstemp(prefix=_prefix(path), suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise write_error(path, exc) from None
    tmp = Path(name)
    os.chmod(tmp, 0o666 & ~_umask())
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and _written(exc, tmp):
            raise write_error(path, exc) from None
        raise


def keep_newest(folder: str | os.PathLike, pattern: str, count: int) -> None:
    """A bounded cache: delete the files of ``folder`` matching ``pattern`` beyond the ``count`` most recently
    written."""
    entries = sorted(Path(folder).glob(pattern), key=lambda e: e.stat().st_mtime, reverse=True)
    for old in entries[count:]:
        old.unlink(missing_ok=True)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_file(path, "w") as f:
        f.write(text)


def check_output_dir(path: str | os.PathLike, marker: str | tuple[str, ...] | None = None) -> None:
    """Fail before any work if the folder ``path`` cannot be (re)written: it is a file, it is a non-empty folder
    that is not ours (none of the ``marker`` files in it), or its place cannot be written."""
    path = Path(path)
    recover(path)
    if path.exists() and not path.is_dir():
        raise TagrankError(f"output folder {path} is an existing file")
    markers = (marker,) if isinstance(marker, str) else marker
    if markers and path.is_dir() and any(path.iterdir()) and not any((path / m).exists() for m in markers):
        raise TagrankError(f"refusing to overwrite {path}: it exists and is not a tagrank output "
                           f"({' or '.join(markers)} missing)")
    for place in [path.parent] + ([path] if path.is_dir() else []):
        try:
            place.mkdir(parents=True, exist_ok=True)
            os.rmdir(tempfile.mkdtemp(prefix=_prefix(path), suffix=".tmp", dir=place))
        except OSError as exc:
            raise SystemFailure(f"cannot write output folder {path}: {os_reason(exc)}") from None


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, marker: str) -> Iterator[Path]:
    """Yield a temporary directory to fill; on success it replaces ``path``.

    An existing ``path`` is only replaced if it holds ``marker`` (it is one of ours) or is empty, so a
    typo in ``--out`` cannot wipe an unrelated folder.
    """
    path = Path(path)
    check_output_dir(path, marker)
    clean_stale(path)
    tmp = Path(tempfile.mkdtemp(prefix=_prefix(path), suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        for file in tmp.iterdir():  # durable before it becomes visible
            with open(file, "rb") as f:
                os.fsync(f.fileno())
        if not path.exists():
            os.replace(tmp, path)
        elif _exchange(tmp, path):
            shutil.rmtree(tmp, ignore_errors=True)  # now the old version
        else:
            old = Path(tempfile.mkdtemp(prefix=_prefix(path), suffix=".old", dir=path.parent))
            os.replace(path, old / "x")
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError) and _written(exc, tmp):
            raise write_error(path, exc) from None
        raise


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def check_writable(path: str | os.PathLike) -> None:
    """Fail before any work if ``path`` cannot be created (missing parent is created, like the writers do)."""
    path = Path(path)
    if path.is_dir():
        raise TagrankError(f"output path is a directory: {path}")
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_prefix(path), suffix=".probe", dir=parent)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise SystemFailure(f"cannot write output {path}: {exc.strerror or exc}") from None
