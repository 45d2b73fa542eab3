"""Backbone features, extracted once and cached in Parquet.

With the backbone frozen (the default) every method trains on the same pooled features, so they are
computed once per image and reused across runs and methods. A cache file holds one backbone +
preprocessing signature; rows are keyed by absolute path, file size and mtime. A photo whose mtime
changed, or that is new at its path, is extracted only if its content is new (a digest of the file is
kept with its row): a folder provided again, moved or copied keeps its features, an edited photo does not.
A row may also hold the features of the mirrored photo (NaN where never asked for).
Decoding runs in background threads while the CNN works on the previous batch (:func:`iter_features`).
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, NamedTuple, Sequence

import numpy as np
import torch

from tagrank._log import log, progress_bar
from tagrank.errors import TagrankError
from tagrank.atomic import atomic_file
from tagrank.images.backbone import Backbone
from tagrank.checksums import file_sha256
from tagrank.images.photos import ImageError, load_image

FLUSH_SECONDS = 30.0
"""How often a long extraction saves the cache (a write of a large cache takes about a second)."""

DEFAULT_CACHE_DIR = Path(os.environ.get("TAGRANK_CACHE", Path.home() / ".cache" / "tagrank"))


class _Row(NamedTuple):
    size: int
    mtime_ns: int
    digest: str | None  # file_sha256 of the photo; None in caches written before digests
    feature: np.ndarray
    flipped: np.ndarray | None


@dataclass
class Features:
    """Features of a list of images, aligned with ``paths``; ``failed`` maps a path to its error."""

    paths: list[str]
    features: np.ndarray  # (N, D) float32
    flipped: np.ndarray | None = None  # (N, D) features of the mirrored image, when extracted
    failed: dict[str, str] = field(default_factory=dict)


def _decode(backbone: Backbone, path: str) -> np.ndarray | ImageError:
    """One photo decoded and preprocessed, or the reason it cannot be."""
    try:
        return backbone.preprocess(load_image(path, min_side=backbone.decode_side))
    except ImageError as exc:
        return exc


DECODERS = max(1, min(2, os.cpu_count() or 1))
"""Photos decoded at once while the CNN runs: PIL releases the GIL while it decodes, and a 12 MP JPEG takes
longer to decode than the CNN on OpenVINO takes for it; never more threads than cores."""


class Batch(NamedTuple):
    """One batch of :func:`iter_features`: its paths in input order, the decoded ones' features (and the
    mirrored photos', when asked), and the errors of the others."""

    paths: list[str]
    good: list[str]
    features: np.ndarray
    flipped: np.ndarray | None
    failed: dict[str, str]


def iter_features(backbone: Backbone, paths: Sequence[str], batch_size: int = 32, flip: bool = False,
                  forward=None) -> Iterator[Batch]:
    """The backbone's features of ``paths``, batch by batch: while the CNN works on one batch (and the caller
    on what it yielded), :data:`DECODERS` threads decode the next, across the whole run.

    ``forward``: the backbone's forward pass on another runtime (tagrank.images.runtimes; never for cached
    features)."""
    paths = [str(p) for p in paths]
    chunks = [paths[i:i + batch_size] for i in range(0, len(paths), batch_size)]
    dim = backbone.feature_dim
    with ThreadPoolExecutor(max_workers=DECODERS) as pool:
        def decoding(chunk: list[str]) -> list:
            return [pool.submit(_decode, backbone, p) for p in chunk]

        pending = decoding(chunks[0]) if chunks else []
        for i, chunk in enumerate(chunks):
            decoded = [future.result() for future in pending]
            pending = decoding(chunks[i + 1]) if i + 1 < len(chunks) else []  # the next batch, while the CNN runs
            good = [p for p, d in zip(chunk, decoded) if not isinstance(d, ImageError)]
            photos = [d for d in decoded if not isinstance(d, ImageError)]
            bad = {p: str(d) for p, d in zip(chunk, decoded) if isinstance(d, ImageError)}
            features, flipped = np.zeros((0, dim), np.float32), None
            if photos:
                with torch.inference_mode():
                    features = backbone.features(photos, batch_size, forward).numpy()  # float32 already
                    if flip:
                        flipped = backbone.features([p[:, ::-1] for p in photos], batch_size, forward).numpy()
            yield Batch(chunk, good, features, flipped if flip else None, bad)


def extract(backbone: Backbone, paths: Sequence[str], batch_size: int = 32, flip: bool = False,
            progress: bool = True, desc: str = "features", bar=None, forward=None) -> Features:
    """Run the backbone over ``paths``; undecodable images are skipped and listed in ``failed``.

    ``bar``: a progress bar over a larger run to advance (instead of one of its own). ``forward``: as in
    :func:`iter_features`.
    """
    out_paths: list[str] = []
    feats: list[np.ndarray] = []
    flips: list[np.ndarray] = []
    failed: dict[str, str] = {}
    own_bar = bar is None
    if own_bar:
        bar = progress_bar(total=len(paths), enabled=progress, desc=desc, unit="img")
    for batch in iter_features(backbone, paths, batch_size, flip, forward):
        failed.update(batch.failed)
        out_paths.extend(batch.good)
        feats.append(batch.features)
        if flip and batch.flipped is not None:
            flips.append(batch.flipped)
        bar.update(len(batch.paths))
    if own_bar:
        bar.close()
    dim = backbone.feature_dim
    stack = (lambda parts: np.concatenate(parts) if parts else np.zeros((0, dim), np.float32))
    return Features(out_paths, stack(feats), stack(flips) if flip else None, failed)


class FeatureCache:
    """Parquet cache of backbone features for one backbone signature.

    ``flip=True`` also returns (and extracts where missing) the features of the mirrored photos. ``runtime``:
    where the CNN extracts them (tagrank.images.runtimes: "torch", or "openvino"/"onnxruntime", about 3× faster
    on a CPU). Another runtime's features agree with torch's to ~1e-5, not to the bit, so each runtime keeps its
    own cache file: what torch extracted, and so a model trained on it, stays reproducible bit for bit.
    """

    def __init__(self, backbone: Backbone, cache_dir: str | os.PathLike | None = None, flip: bool = False,
                 runtime: str = "torch"):
        from tagrank.images.runtimes import check_runtime

        if runtime == "auto":
            raise TagrankError("the feature cache needs a runtime named (torch, openvino or onnxruntime), not auto")
        self.backbone = backbone
        self.flip = flip
        self.runtime = check_runtime(runtime)
        self.dir = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE_DIR
        suffix = "" if runtime == "torch" else f"-{runtime}"
        self.path = self.dir / f"features-{backbone.signature}{suffix}.parquet"
        self._rows: dict[str, _Row] = {}
        # State of one get(): whether a row gained a new mtime or a digest (the cache is then written), and
        # the rows by digest, built when a photo is first looked up by content.
        self._updated = False
        self._by_digest: dict[str, _Row] | None = None
        if self.path.is_file():
            self._read()

    @staticmethod
    def _key(path: str) -> tuple[str, int, int]:
        st = os.stat(path)
        return os.path.abspath(path), st.st_size, st.st_mtime_ns

    def _read(self) -> None:
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(self.path)
            feats, flips = self._arrays(table)
        except Exception as exc:  # a damaged or foreign cache is rebuilt, never trusted
            log.warning("rebuilding the feature cache %s: %s", self.path, exc)
            return
        digests = table.column("digest").to_pylist() if "digest" in table.column_names else [None] * len(table)
        for i, (p, size, mtime) in enumerate(zip(*(table.column(c).to_pylist() for c in ("path", "size", "mtime_ns")))):
            flipped = None if flips is None or np.isnan(flips[i, 0]) else flips[i]
            self._rows[p] = _Row(size, mtime, digests[i], feats[i], flipped)

    def _arrays(self, table) -> tuple[np.ndarray, np.ndarray | None]:
        """The feature (and mirrored-feature) matrices of a cache table, after checking its layout."""
        import pyarrow as pa

        dim = self.backbone.feature_dim
        missing = [c for c in ("path", "size", "mtime_ns", "feature") if c not in table.column_names]
        if missing:
            raise ValueError(f"it lacks the column(s) {', '.join(missing)}")
        for name in ("feature", "flipped"):
            if name in table.column_names:
                kind = table.schema.field(name).type
                if not (pa.types.is_fixed_size_list(kind) and kind.list_size == dim):
                    raise ValueError(f"its {name!r} column is {kind}, not {dim} floats per photo")

        def matrix(name):
            return np.asarray(table.column(name).combine_chunks().flatten(), np.float32).reshape(-1, dim)
        return matrix("feature"), (matrix("flipped") if "flipped" in table.column_names else None)

    def _write(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        items = list(self._rows.items())
        dim = self.backbone.feature_dim
        columns = {
            "path": pa.array([p for p, _ in items], pa.string()),
            "size": pa.array([r.size for _, r in items], pa.int64()),
            "mtime_ns": pa.array([r.mtime_ns for _, r in items], pa.int64()),
            "digest": pa.array([r.digest for _, r in items], pa.string()),
            "feature": pa.FixedSizeListArray.from_arrays(
                pa.array(np.concatenate([r.feature for _, r in items]) if items else np.zeros(0, np.float32)), dim),
        }
        if any(r.flipped is not None for _, r in items):
            nan = np.full(dim, np.nan, np.float32)
            columns["flipped"] = pa.FixedSizeListArray.from_arrays(
                pa.array(np.concatenate([nan if r.flipped is None else r.flipped for _, r in items])), dim)
        table = pa.table(columns, metadata={"signature": self.backbone.signature})
        with atomic_file(self.path) as f:
            pq.write_table(table, f)

    def __len__(self) -> int:
        return len(self._rows)

    def _current(self, path: str, key: tuple[str, int, int], digests: dict[str, str]) -> bool:
        """Whether the cache holds ``path``'s features now (``key``: absolute path, size, mtime).

        A row whose size and mtime match is taken as it is. Otherwise the file's digest decides: the same
        bytes under a new mtime (a touch, a folder provided again) or at another path (a moved or copied
        library) keep their features, and a row cached before digests gains one; the row is updated, so
        the cache is written again. ``digests`` keeps the digests computed, for the photos then extracted.
        """
        abspath, size, mtime = key
        row = self._rows.get(abspath)
        if row is not None and (row.size, row.mtime_ns) == (size, mtime) and row.digest is not None:
            return not (self.flip and row.flipped is None)
        digest = digests[path] = file_sha256(path)
        if row is None or row.size != size or (row.mtime_ns != mtime and row.digest != digest):
            if self._by_digest is None:
                self._by_digest = {r.digest: r for r in self._rows.values() if r.digest is not None}
            row = self._by_digest.get(digest)  # the same bytes, cached under another path
            if row is None or row.size != size:
                return False
        self._rows[abspath] = row._replace(mtime_ns=mtime, digest=digest)
        self._updated = True
        return not (self.flip and row.flipped is None)

    def get(self, paths: Sequence[str | os.PathLike], batch_size: int = 32, progress: bool = True) -> Features:
        """Features for ``paths`` in order, extracting (and caching) only what is missing or changed."""
        paths = [str(p) for p in paths]
        keys: dict[str, tuple[str, int, int]] = {}
        failed: dict[str, str] = {}
        for p in paths:
            try:
                keys[p] = self._key(p)
            except OSError:
                failed[p] = f"{p}: file not found"
        self._updated, self._by_digest, digests = False, None, {}
        missing = []
        for p, key in keys.items():
            try:
                if not self._current(p, key, digests):
                    missing.append(p)
            except OSError as exc:
                failed[p] = f"{p}: {exc.strerror or exc}"
        if missing:
            log.info("extracting %s features for %d of %d images (cache: %s)",
                     self.backbone.signature, len(missing), len(paths), self.path)
            bar = progress_bar(total=len(missing), enabled=progress, desc="features", unit="img")
            forward = None
            if self.runtime != "torch":
                from tagrank.images.runtimes import runtime_forward

                forward = runtime_forward(self.runtime, self.backbone, self.dir)
            last_write = time.monotonic()
            # Flushed every FLUSH_SECONDS (and at the end): a killed run loses at most that much work.
            for chunk in _chunks(missing, max(batch_size, 512)):
                fresh = extract(self.backbone, chunk, batch_size, self.flip, bar=bar, forward=forward)
                for i, p in enumerate(fresh.paths):
                    ap, size, mtime = keys[p]
                    self._rows[ap] = _Row(size, mtime, digests.get(p) or file_sha256(p), fresh.features[i],
                                          None if fresh.flipped is None else fresh.flipped[i])
                failed.update(fresh.failed)
                if time.monotonic() - last_write >= FLUSH_SECONDS:
                    self._write()
                    last_write = time.monotonic()
            self._write()
            bar.close()
        elif self._updated:
            self._write()
        good = [p for p in paths if p in keys and p not in failed]
        dim = self.backbone.feature_dim
        feats = np.stack([self._rows[keys[p][0]].feature for p in good]) if good else np.zeros((0, dim), np.float32)
        flips = (np.stack([self._rows[keys[p][0]].flipped for p in good]) if good else np.zeros((0, dim), np.float32)) \
            if self.flip else None
        return Features(good, feats.astype(np.float32), flips, failed)


def _chunks(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]
