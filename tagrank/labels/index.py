"""The label index: a vocabulary's vectors, precomputed once, in FAISS.

On disk (``tagrank index build``) an index is a directory of three files:

* ``labels.faiss``   - the unit-length label vectors in a FAISS inner-product index (so a search is cosine):
  ``Flat``, or for large vocabularies ``IVF{n},Flat`` whose n clusters also serve ``rank --search approx``
  (:mod:`tagrank.ranking.search`); the manifest's ``index_type`` says which;
* ``labels.parquet`` - one row per tag: tag, normalised form, tokens used, in-vocabulary flag, vector norm;
* ``manifest.json``  - vector source and checksum, dimension, counts, file checksums, tagrank version.

The raw vectors that the models score are ``unit * norm``. Loading verifies the file checksums and,
given the vectors a caller uses, that they are the ones the index was built from.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from tagrank import __version__
from tagrank.atomic import atomic_directory, recover
from tagrank.checksums import file_sha256, text_key
from tagrank.errors import TagrankError
from tagrank.labels.encoders import LabelEncoder, normalise_tag

MANIFEST = "manifest.json"
FAISS_FILE = "labels.faiss"
TABLE_FILE = "labels.parquet"
FORMAT = "tagrank-label-index/1"
CACHED_VOCABULARY_MIN_TAGS = 500
"""Vocabularies this large or larger are cached on disk by :func:`embedded_vocabulary`."""
CACHED_VOCABULARIES = 32
"""Entries the vocabulary cache keeps (the most recently written)."""


def _unit(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    norms = np.linalg.norm(vectors, axis=1).astype(np.float32)
    return (vectors / np.maximum(norms, 1e-12)[:, None]).astype(np.float32), norms


class LabelIndex:
    """Tags with their vectors and a FAISS index for cosine search over them."""

    def __init__(self, table, unit: np.ndarray, manifest: dict, index=None):
        """``index``: the FAISS index of ``unit`` (default: a flat one is built)."""
        import faiss

        self.table = table
        self.manifest = manifest
        self._in_vocab = table[table["in_vocab"]].reset_index(drop=True)
        self.unit = np.ascontiguousarray(unit, dtype=np.float32)
        if index is None:
            index = faiss.IndexFlatIP(self.unit.shape[1])
            index.add(self.unit)
        self.faiss = index
        if self.clusters:
            from tagrank.ranking.search import COSINE_PROBED_SHARE, probed

            self.faiss.nprobe = probed(self.clusters, COSINE_PROBED_SHARE)
        self.manifest.setdefault("index_type", index_type(index))

    # -- views -------------------------------------------------------------------------------------

    @property
    def tags(self) -> list[str]:
        """The in-vocabulary tags, in index order (row i of :attr:`vectors`)."""
        return self._in_vocab["tag"].tolist()

    @property
    def oov(self) -> list[str]:
        return self.table.loc[~self.table["in_vocab"], "tag"].tolist()

    @property
    def vectors(self) -> np.ndarray:
        """The raw label vectors (V x d) that models score."""
        return self.unit * self._in_vocab["norm"].to_numpy(np.float32)[:, None]

    @property
    def dim(self) -> int:
        return int(self.manifest["dim"])

    @property
    def source(self) -> str:
        return str(self.manifest["vector_source"])

    @property
    def clusters(self) -> int:
        """Clusters of an ``IVF`` index; 0 for a flat one."""
        return int(getattr(self.faiss, "nlist", 0))

    def __len__(self) -> int:
        return len(self._in_vocab)

    # -- building ----------------------------------------------------------------------------------

    @classmethod
    def build(cls, tags: list[str], vectors: LabelEncoder, strict: bool = False,
              clusters: int | None = None) -> "LabelIndex":
        """Embed ``tags`` (OOV ones reported, or an error with ``strict``) and index them.

        Tags that the encoder normalises alike (``beach``, ``Beach``, ``#beach``) are one tag: the first
        spelling is kept and the others named in a warning. ``clusters``: see :meth:`make`.
        """
        import pandas as pd

        from tagrank.labels.vocab import merge_duplicates

        embedded = vectors.embed(merge_duplicates(tags, vectors.normalise), strict=strict)
        unit, norms = _unit(embedded.matrix)
        norm_iter = iter(norms.tolist())
        table = pd.DataFrame({
            "tag": [e.tag for e in embedded.entries],
            "normalised": [e.normalised for e in embedded.entries],
            "tokens": [list(e.tokens) for e in embedded.entries],
            "in_vocab": [e.in_vocab for e in embedded.entries],
            "norm": [next(norm_iter) if e.in_vocab else np.nan for e in embedded.entries],
        })
        return cls.make(table, unit, vectors, clusters)

    @classmethod
    def from_vectors(cls, vectors: LabelEncoder, clusters: int | None = None) -> "LabelIndex":
        """Index every word of a word-vector file's vocabulary (400k for GloVe), each its own token."""
        if not hasattr(vectors, "keyed"):
            raise TagrankError(f"{vectors.source} encodes any string and has no word list to search: "
                               "give --index with a label index built from a vocabulary")
        import pandas as pd

        words = list(vectors.keyed.index_to_key)
        unit, norms = _unit(np.asarray(vectors.keyed.vectors, dtype=np.float32))
        table = pd.DataFrame({"tag": words, "normalised": words, "tokens": [[w] for w in words],
                              "in_vocab": np.ones(len(words), bool), "norm": norms})
        return cls.make(table, unit, vectors, clusters)

    @classmethod
    def make(cls, table, unit: np.ndarray, vectors: LabelEncoder, clusters: int | None = None) -> "LabelIndex":
        """Index ``unit`` flat, or clustered: ``clusters`` > 0 that many, None chosen by size (clustered
        from :data:`~tagrank.ranking.search.APPROX_MIN_TAGS` tags), 0 never."""
        from tagrank.ranking.search import APPROX_MIN_TAGS, cluster_index, default_clusters

        if clusters is None:
            clusters = default_clusters(len(unit)) if len(unit) >= APPROX_MIN_TAGS else 0
        if clusters < 0:
            raise TagrankError(f"clusters must be 0 (a flat index) or more, got {clusters}")
        index = cluster_index(unit, clusters) if clusters and len(unit) else None
        return cls(table, unit, cls._manifest(vectors, table), index)

    @staticmethod
    def _manifest(vectors: LabelEncoder, table) -> dict:
        return {
            "format": FORMAT,
            "tagrank_version": __version__,
            "vector_source": vectors.source,
            "vector_checksum": vectors.checksum,
            "encoder": vectors.describe(),
            "dim": vectors.dim,
            "count": int(table["in_vocab"].sum()),
            "tags_total": len(table),
            "oov": table.loc[~table["in_vocab"], "tag"].tolist(),
        }

    # -- disk --------------------------------------------------------------------------------------

    def save(self, directory: str | os.PathLike) -> Path:
        """Write the three files atomically: an interrupted save leaves the old index (or none)."""
        import faiss

        with atomic_directory(directory, MANIFEST) as tmp:
            # Written by Python, not faiss.write_index: a full disk is then an OSError naming the index.
            (tmp / FAISS_FILE).write_bytes(faiss.serialize_index(self.faiss).tobytes())
            self.table.to_parquet(tmp / TABLE_FILE, index=False)
            manifest = dict(self.manifest, files={name: file_sha256(tmp / name) for name in (FAISS_FILE, TABLE_FILE)})
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        self.manifest = manifest
        return Path(directory)

    @staticmethod
    def read_manifest(directory: str | os.PathLike) -> dict:
        directory = Path(directory)
        recover(directory)  # a replacement that died between its two renames
        path = directory / MANIFEST
        if not directory.is_dir():
            raise TagrankError(f"label index not found: {directory}")
        if not path.is_file():
            raise TagrankError(f"not a label index (no {MANIFEST}): {directory}")
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise TagrankError(f"corrupted manifest {path}: {exc}") from None
        if not isinstance(manifest, dict):
            raise TagrankError(f"corrupted manifest {path}: a JSON {type(manifest).__name__}, not an object")
        if manifest.get("format") != FORMAT:
            raise TagrankError(f"not a tagrank label index ({path} format {manifest.get('format')!r})")
        if not isinstance(manifest.get("files", {}), dict):
            raise TagrankError(f"corrupted manifest {path}: its 'files' is not an object")
        return manifest

    @classmethod
    def verify(cls, directory: str | os.PathLike) -> dict:
        """The manifest, after checking that every file it lists is present and matches its checksum."""
        directory = Path(directory)
        manifest = cls.read_manifest(directory)
        files = manifest.get("files")
        if not files:
            raise TagrankError(f"label index {directory}: its {MANIFEST} lists no file checksums")
        for name, digest in files.items():
            path = directory / name
            if not path.is_file():
                raise TagrankError(f"label index {directory} is missing {name}")
            if file_sha256(path) != digest:
                raise TagrankError(f"corrupted label index: {path} does not match its checksum in {MANIFEST}")
        return manifest

    @classmethod
    def load(cls, directory: str | os.PathLike, vectors: LabelEncoder | None = None) -> "LabelIndex":
        """Load and verify an index; with ``vectors``, refuse one built from other vectors."""
        import faiss
        import pandas as pd

        directory = Path(directory)
        manifest = cls.verify(directory)
        if vectors is not None:
            check_vector_match(manifest, vectors, f"label index {directory}")
        try:
            stored = faiss.read_index(str(directory / FAISS_FILE))
            table = pd.read_parquet(directory / TABLE_FILE)
            if getattr(stored, "nlist", 0):
                faiss.extract_index_ivf(stored).make_direct_map()  # lets reconstruct_n read an IVF index
            unit = stored.reconstruct_n(0, stored.ntotal) if stored.ntotal else np.zeros((0, manifest["dim"]), np.float32)
        except Exception as exc:
            raise TagrankError(f"corrupted label index {directory}: {exc}") from None
        if unit.shape != (int(table["in_vocab"].sum()), manifest["dim"]):
            raise TagrankError(f"corrupted label index {directory}: {FAISS_FILE} and {TABLE_FILE} disagree")
        if manifest.get("index_type", "Flat") != index_type(stored):
            raise TagrankError(f"corrupted label index {directory}: {FAISS_FILE} is {index_type(stored)}, its "
                               f"{MANIFEST} says {manifest.get('index_type')}")
        return cls(table, unit, manifest, stored)

    # -- search ------------------------------------------------------------------------------------

    def search(self, queries: np.ndarray, top: int) -> tuple[np.ndarray, np.ndarray]:
        """Cosine similarities and row indices of the ``top`` nearest labels for each query vector."""
        q, _ = _unit(np.atleast_2d(np.asarray(queries, dtype=np.float32)))
        return self.faiss.search(q, min(top, len(self)))

    def similar(self, tag: str, top: int, vectors: LabelEncoder | None = None) -> list[tuple[str, float]]:
        """The ``top`` labels nearest to ``tag`` by cosine, the tag itself left out.

        A tag in the index uses its stored vector; any other tag needs ``vectors`` (those of the index).
        """
        if top <= 0:
            raise TagrankError(f"--top must be a positive number, got {top}")
        row = self._row_of(tag, vectors)
        if row is not None:
            query = self.unit[row]
        else:
            if vectors is None:
                raise TagrankError(f"tag {tag!r} is not in the label index and no vectors were given to embed it")
            entry = vectors.lookup(tag)
            if not entry.in_vocab:
                raise TagrankError(f"tag {tag!r} is not in the vectors ({vectors.source})")
            query = vectors.vector(entry)
        scores, rows = self.search(query, top + 1)
        tags = self._in_vocab["tag"]
        out = [(tags.iat[int(r)], float(s)) for s, r in zip(scores[0], rows[0]) if r >= 0 and r != row]
        return out[:top]

    def _row_of(self, tag: str, vectors: LabelEncoder | None) -> int | None:
        lowercase = vectors.lowercase if vectors is not None else True
        norm = normalise_tag(tag, lowercase)
        for column, key in (("tag", tag), ("normalised", norm)):
            hits = np.flatnonzero(self._in_vocab[column].to_numpy() == key)
            if len(hits):
                return int(hits[0])
        return None


def index_type(index) -> str:
    """FAISS's factory name of an index of ours: ``Flat`` or ``IVF{n},Flat``."""
    clusters = getattr(index, "nlist", 0)
    return f"IVF{clusters},Flat" if clusters else "Flat"


def check_vector_match(manifest: dict, vectors: LabelEncoder, what: str) -> None:
    """Refuse to combine ``what`` (an index or model) with vectors other than those it was built from."""
    dim, source, checksum = manifest.get("dim"), manifest.get("vector_source"), manifest.get("vector_checksum")
    if dim != vectors.dim:
        raise TagrankError(f"{what} uses {dim}-d vectors ({source}) but the vectors given are {vectors.dim}-d "
                           f"({vectors.source})")
    if checksum != vectors.checksum:
        raise TagrankError(f"{what} was built from vectors {source} (checksum {checksum}) but the vectors given are "
                           f"{vectors.source} (checksum {vectors.checksum})")


def embedded_vocabulary(tags: list[str], encoder: LabelEncoder, cache_dir: str | os.PathLike | None = None,
                        persist: bool = True) -> tuple[list[str], np.ndarray, list[str]]:
    """What :meth:`LabelIndex.build` gives a ranker: the embedded tags, their raw vectors and the OOV tags.

    Cached on disk under ``cache_dir/vocabularies`` (default: the feature cache's folder), keyed by the
    encoder's checksum and the tag list, so a vocabulary used again (the default one on every
    ``tagrank rank``) costs one small file read instead of an embedding and an index. A damaged or
    unwritable cache is ignored and rebuilt. ``persist=False``: the cache is neither read nor written.
    """
    from tagrank.array_cache import read_entry, write_entry
    from tagrank.images.features import DEFAULT_CACHE_DIR
    from tagrank.labels.vocab import merge_duplicates

    tags = merge_duplicates(tags, encoder.normalise)
    if len(tags) < CACHED_VOCABULARY_MIN_TAGS or not persist:  # cheap to embed again, or not to be kept
        return _embedded(tags, encoder)
    key = text_key([encoder.checksum, *tags])
    path = Path(cache_dir if cache_dir is not None else DEFAULT_CACHE_DIR) / "vocabularies" / f"{key}.safetensors"
    entry = read_entry(path, {"checksum": encoder.checksum})
    if entry is not None and len(entry[0]["tags"]) == len(entry[1]["vectors"]) \
            and entry[1]["vectors"].shape[1:] == (encoder.dim,):
        stored, vectors = entry[0], entry[1]["vectors"]
        if stored["oov"]:
            encoder.warn_oov(stored["oov"], len(tags))
        return stored["tags"], vectors, stored["oov"]
    embedded, vectors, oov = _embedded(tags, encoder)
    write_entry(path, {"vectors": vectors}, {"tags": embedded, "oov": oov, "checksum": encoder.checksum},
                CACHED_VOCABULARIES)
    return embedded, vectors, oov


def _embedded(tags: list[str], encoder: LabelEncoder) -> tuple[list[str], np.ndarray, list[str]]:
    """The in-vocabulary tags, their raw vectors as a :class:`LabelIndex` holds them (unit × norm) and the OOV
    tags, without the index's table and FAISS (whose imports alone cost a user's small vocabulary 0.7 s)."""
    embedded = encoder.embed(tags)
    unit, norms = _unit(embedded.matrix)
    kept = [e.tag for e in embedded.entries if e.in_vocab]
    return kept, unit * norms[:, None], [e.tag for e in embedded.entries if not e.in_vocab]
