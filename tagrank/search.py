"""How the ranking engine searches a vocabulary (``tagrank rank --search``).

* ``exact``  - the torch scan of :mod:`tagrank.ranking`: every tag scored.
* ``faiss``  - the same exact search in a FAISS flat inner-product index, on GPU when the faiss-gpu build
  sees one. For ‖F w‖ the index holds the quadratic features of the vectors and each image queries with
  its weighted Gram entries (the torch scan's quadratic form); candidates are re-scored exactly, so the
  results are the torch scan's.
* ``approx`` - a clustered vocabulary (a FAISS IVF index of the unit label vectors, k-means on the
  sphere). Each cluster's centroid is scored like any tag; the members of the ``probes`` best clusters are
  then scored exactly and the top K taken from them. Per image that is clusters + probes·V/clusters
  scores instead of V: sub-linear, and exact wherever the true top K lies in the probed clusters (how
  often it does depends on the vocabulary and the model: BENCHMARKS.md, *Engine*, has measured recall).
* ``auto``   - ``approx`` from :data:`APPROX_MIN_TAGS` tags, else ``faiss`` where FAISS sees a GPU, else
  ``exact``.

Every engine has ``vectors`` (V, D), ``len()`` and ``top_k(factors, k, reduce)`` with the torch scan's
contract: (scores, indices), best first, ties to the lower vocabulary index.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from tagrank._log import log
from tagrank.errors import TagrankError
from tagrank.ranking import CANDIDATES_PER_RESULT, Vocabulary, exact_scores, finish, quadratic_features, \
    quadratic_query, quadratic_width, select

SEARCHES = ("auto", "exact", "faiss", "approx")
APPROX_MIN_TAGS = 1_000_000
"""``auto`` searches approximately from this many tags (the exact scan then costs ≥ 0.3 s per photo at d=300)."""
PROBED_SHARE = 1 / 16
"""Share of the clusters ``approx`` probes by default: chosen on Corel5k training photos with
scripts/bench_rank.py --split validation (the default model over 400k words: recall@5 0.90 at 10x the
exact scan's speed; 1/32: 0.81 at 18x; 1/8: no better recall at 5x)."""
KMEANS_ITERATIONS = 20
KMEANS_POINTS_PER_CLUSTER = 64
"""k-means trains on at most this many vectors per cluster (a sample; every vector is then assigned)."""
FAISS_MAX_ELEMENTS = 1 << 30
"""The flat FAISS index of quadratic features is refused beyond this many floats (4 GiB)."""


def check_search(search: str) -> str:
    if search not in SEARCHES:
        raise TagrankError(f"--search must be one of {', '.join(SEARCHES)}, got {search!r}")
    return search


def default_clusters(n_vectors: int) -> int:
    """Clusters for a vocabulary of ``n_vectors``: about 2·√V, a power of two (1,024 at 400k, 4,096 at 3M)."""
    return int(2 ** round(math.log2(max(2.0 * math.sqrt(n_vectors), 1.0))))


def probed(clusters: int) -> int:
    """How many of ``clusters`` a search probes by default: the :data:`PROBED_SHARE`, at least one."""
    return max(1, round(clusters * PROBED_SHARE))


def cluster_index(unit: np.ndarray, clusters: int, seed: int = 0):
    """A FAISS ``IVF{clusters},Flat`` inner-product index of unit vectors, trained by spherical k-means."""
    import faiss

    n, dim = unit.shape
    clusters = max(1, min(clusters, n))
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, clusters, faiss.METRIC_INNER_PRODUCT)
    index.cp.spherical = True
    index.cp.niter = KMEANS_ITERATIONS
    index.cp.seed = seed
    index.cp.max_points_per_centroid = KMEANS_POINTS_PER_CLUSTER
    index.cp.min_points_per_centroid = 1  # small vocabularies: no warning, the clusters are just small
    index.train(unit)
    index.add(unit)
    return index


def cluster_assignment(index) -> np.ndarray:
    """(V,) the inverted list of every vector of an IVF index, by vector id."""
    import faiss

    ivf = faiss.extract_index_ivf(index)
    assignment = np.full(ivf.ntotal, -1, np.int64)
    for cluster in range(ivf.nlist):
        size = ivf.invlists.list_size(cluster)
        if size:
            assignment[faiss.rev_swig_ptr(ivf.invlists.get_ids(cluster), size)] = cluster
    return assignment


def cluster_centres(index) -> np.ndarray:
    """(clusters, d) the centroids of an IVF index (unit for the spherical k-means of :func:`cluster_index`)."""
    import faiss

    ivf = faiss.extract_index_ivf(index)
    return ivf.quantizer.reconstruct_n(0, ivf.nlist)


class ClusteredVocabulary:
    """Approximate search: probe the best-scoring clusters, re-score their members exactly."""

    def __init__(self, vectors: torch.Tensor, assignment: np.ndarray, centroids: torch.Tensor,
                 probes: int | None = None):
        """``assignment`` (V,): each tag's cluster; ``centroids`` (clusters, D): each cluster's centre in the
        engine's space (the method's label space of the unit mean direction), scored like a tag."""
        self.vectors = vectors.float().contiguous()
        assignment = torch.as_tensor(assignment, dtype=torch.long)
        if assignment.shape != (len(self.vectors),) or bool((assignment < 0).any()):
            raise TagrankError("the label index's clusters do not cover its vectors: rebuild the index")
        # A copy of the vectors stored cluster by cluster: a cluster's tags are one range of rows, and
        # gathering ranges is ~2.6x faster than gathering scattered rows of `vectors` (400k x 50, 1/16 probed).
        self.order = assignment.argsort(stable=True)
        self.members = self.vectors[self.order]
        sizes = torch.bincount(assignment)
        kept = (sizes > 0).nonzero().squeeze(1)
        self.sizes = sizes[kept]
        self.starts = torch.cumsum(sizes, 0)[kept] - self.sizes
        self.centroids = centroids.float()[kept]  # empty clusters are never probed
        self.probes = probes if probes is not None else probed(len(kept))

    def __len__(self) -> int:
        return self.vectors.shape[0]

    def top_k(self, factors: torch.Tensor, k: int, reduce: str) -> tuple[torch.Tensor, torch.Tensor]:
        k = min(k, len(self))
        sign = -1.0 if reduce == "norm" else 1.0  # relevance: larger is better
        ranked = (sign * exact_scores(factors, self.centroids, reduce)).argsort(dim=1, descending=True, stable=True)
        best_rel, best_idx = [], []
        for b in range(factors.shape[0]):
            # The best `probes` clusters, and more while they hold fewer than k tags.
            enough = int(torch.searchsorted(torch.cumsum(self.sizes[ranked[b]], 0), k)) + 1
            chosen = ranked[b, :max(self.probes, enough)]
            sizes, starts = self.sizes[chosen], self.starts[chosen]
            # The rows of the chosen clusters in the cluster-sorted members, without a loop over clusters.
            rows = torch.arange(int(sizes.sum())) + torch.repeat_interleave(starts - (torch.cumsum(sizes, 0) - sizes), sizes)
            relevance = sign * exact_scores(factors[b:b + 1], self.members[rows], reduce)
            # topk first: ordering all candidates by (relevance, index) would cost more than scoring them
            relevance, where = relevance.topk(min(len(rows), CANDIDATES_PER_RESULT * k), dim=1)
            rel, idx = select(relevance, self.order[rows][where], k)
            best_rel.append(rel)
            best_idx.append(idx)
        return sign * torch.cat(best_rel), torch.cat(best_idx)


class FaissVocabulary:
    """Exact search in a flat FAISS inner-product index (on all visible GPUs with faiss-gpu)."""

    def __init__(self, vectors: torch.Tensor, reduce: str | None = None):
        """``reduce``: build the index for that score now (a refusal then comes before any photo is read)."""
        self.vectors = vectors.float().contiguous()
        self._indexes: dict[str, object] = {}
        if reduce is not None:
            self._index(reduce)

    def __len__(self) -> int:
        return self.vectors.shape[0]

    @staticmethod
    def gpus() -> int:
        """GPUs FAISS can use; 0 without importing FAISS when torch sees no CUDA device (a cold start of
        `tagrank rank` would otherwise pay for the import)."""
        if not torch.cuda.is_available():
            return 0
        import faiss

        return faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0

    def _index(self, reduce: str):
        if reduce not in self._indexes:
            import faiss

            if reduce == "norm":
                width = quadratic_width(self.vectors)
                if len(self) * width > FAISS_MAX_ELEMENTS:
                    raise TagrankError(f"--search faiss would hold {len(self):,} x {width:,} quadratic features "
                                       f"(over {FAISS_MAX_ELEMENTS * 4 >> 30} GiB): use --search exact or approx")
                rows = quadratic_features(self.vectors)
            else:
                rows = self.vectors / self.vectors.norm(dim=1, keepdim=True).clamp_min(1e-12) \
                    if reduce == "cosine" else self.vectors
            index = faiss.IndexFlatIP(rows.shape[1])
            index.add(np.ascontiguousarray(rows.numpy(), dtype=np.float32))
            if self.gpus() > 0:
                index = faiss.index_cpu_to_all_gpus(index)
            self._indexes[reduce] = index
        return self._indexes[reduce]

    def top_k(self, factors: torch.Tensor, k: int, reduce: str) -> tuple[torch.Tensor, torch.Tensor]:
        k = min(k, len(self))
        # The index finds candidates; the exact scores (as the torch scan computes them) order them.
        query = -quadratic_query(factors).T if reduce == "norm" else factors[:, 0, :]
        keep = min(len(self), CANDIDATES_PER_RESULT * k)
        _, found = self._index(reduce).search(np.ascontiguousarray(query.numpy(), dtype=np.float32), keep)
        return finish(factors, self.vectors, torch.from_numpy(found).long(), k, reduce)


def recall(found: torch.Tensor, exact: torch.Tensor, at: int) -> float:
    """Mean share of each row's exact top ``at`` (indices, best first) that ``found`` also has in its top ``at``."""
    return float(np.mean([len(set(f[:at].tolist()) & set(e[:at].tolist())) / at for f, e in zip(found, exact)]))


def make_engine(vectors: torch.Tensor, search: str = "auto", clusters=None, raw: np.ndarray | None = None,
                label_space: Callable[[torch.Tensor], torch.Tensor] | None = None, reduce: str | None = None):
    """The engine for label vectors (V, D) in the method's space, ``label_space(raw)``, scored by
    ``reduce`` (when given, ``faiss`` builds its index now).

    ``approx`` uses ``clusters`` (the IVF index of a label index) or clusters the unit ``raw`` vectors
    (default: ``vectors``); the centres, unit mean directions of raw vectors, go through ``label_space``
    like any tag (for a label space with constant coordinates, a mean of label vectors would not).
    """
    if check_search(search) == "auto":
        if len(vectors) >= APPROX_MIN_TAGS:
            search = "approx"
            log.warning("ranking %s tags approximately (probing clusters); --search exact scores every tag",
                        f"{len(vectors):,}")
        else:
            # FAISS holds quadratic features for ‖F w‖: too wide for some label spaces (the name row's)
            fits = reduce != "norm" or len(vectors) * quadratic_width(vectors) <= FAISS_MAX_ELEMENTS
            search = "faiss" if fits and FaissVocabulary.gpus() > 0 else "exact"
    if search == "exact":
        return Vocabulary(vectors)
    if search == "faiss":
        return FaissVocabulary(vectors, reduce)
    if clusters is None:
        unit = torch.nn.functional.normalize(torch.as_tensor(raw if raw is not None else vectors).float(), dim=1)
        clusters = cluster_index(unit.numpy(), default_clusters(len(vectors)))
    centres = torch.nn.functional.normalize(torch.from_numpy(cluster_centres(clusters)), dim=1)
    with torch.no_grad():
        centres = label_space(centres) if label_space is not None else centres
    return ClusteredVocabulary(vectors, cluster_assignment(clusters), centres)
