"""How the ranking engine searches a vocabulary (``tagrank rank --search``).

* ``exact``  - the torch scan of :mod:`tagrank.ranking`: every tag scored.
* ``faiss``  - the same exact search in a FAISS flat inner-product index, on GPU when the faiss-gpu build
  sees one. For ‖F w‖ the index holds the quadratic features of the vectors and each image queries with
  its weighted Gram entries (the torch scan's quadratic form); candidates are re-scored exactly, so the
  results are the torch scan's.
* ``approx`` - a clustered vocabulary (a FAISS IVF index of the unit label vectors, k-means on the
  sphere) and the tags the model keeps ranking high. Each cluster's centroid is scored like any tag; the
  members of the ``probes`` best clusters and the *frequent* tags are then scored exactly and the top K
  taken from them. Per image that is clusters + probes·V/clusters + |frequent| scores instead of V:
  sub-linear, and exact wherever the true top K lies among them (how often it does depends on the
  vocabulary and the model: BENCHMARKS.md, *Engine*, has measured recall).
  The frequent tags are learned from the photos ranked: the first :data:`CALIBRATION_PHOTOS` photos are
  ranked *exactly* (every tag scored) and the top :data:`FREQUENT_PER_PHOTO` of each join them. A model's
  best tags over a large vocabulary concentrate on a few thousand (GloVe's 400k words: the top 50 of
  1,024 photos are 8k words holding 99.6 % of other photos' top 5), which cluster centres cannot see: a
  centre's direction says little about its outlying members.
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
from tagrank.ranking import CANDIDATES_PER_RESULT, Vocabulary, exact_scores, finish, pad_rows, \
    quadratic_features, quadratic_query, quadratic_width, select, top_k

SEARCHES = ("auto", "exact", "faiss", "approx")
APPROX_MIN_TAGS = 1_000_000
"""``auto`` searches approximately from this many tags (the exact scan then costs ≥ 0.3 s per photo at d=300)."""
PROBED_SHARE = 1 / 512
"""Share of the clusters ``approx`` probes by default, beside the frequent tags: chosen on Corel5k training
photos with scripts/bench_rank.py --split validation, 512 calibration photos. GloVe model over GloVe's 400k
words: recall@5 0.956, 0.966, 0.966 probing 1, 2 or 4 of 1,024 clusters, at 14x, 12x and 9.4x the exact
scan's speed (AVX512-BF16 CPU, 2026-12-02); default model over 399k words: 0.925 at all three, 55x, 52x,
33x. Probing stays for photos unlike the calibration ones, whose top tags are not frequent."""
COSINE_PROBED_SHARE = 1 / 16
"""Share of the clusters a label index's cosine search (nearest tags) probes: it has no frequent tags."""
CALIBRATION_PHOTOS = 512
"""``approx`` ranks this many photos exactly first; their top tags become the frequent tags it always scores
(validation, GloVe model over 400k words: recall@5 0.950 after 256, 0.959 after 512)."""
FREQUENT_PER_PHOTO = 50
"""How many of each calibration photo's exact top tags join the frequent tags."""
KMEANS_ITERATIONS = 20
KMEANS_POINTS_PER_CLUSTER = 64
"""k-means trains on at most this many vectors per cluster (a sample; every vector is then assigned)."""
PROBED_ELEMENTS = 1 << 24
"""``approx`` gathers the probed tags' vectors for this many elements (64 MiB) of photos × tags × D at a time."""
FAISS_MAX_ELEMENTS = 1 << 30
"""The flat FAISS index of quadratic features is refused beyond this many floats (4 GiB)."""


def check_search(search: str) -> str:
    if search not in SEARCHES:
        raise TagrankError(f"--search must be one of {', '.join(SEARCHES)}, got {search!r}")
    return search


def default_clusters(n_vectors: int) -> int:
    """Clusters for a vocabulary of ``n_vectors``: about 2·√V, a power of two (1,024 at 400k, 4,096 at 3M)."""
    return int(2 ** round(math.log2(max(2.0 * math.sqrt(n_vectors), 1.0))))


def probed(clusters: int, share: float = PROBED_SHARE) -> int:
    """How many of ``clusters`` a search probes by default: the ``share`` of them, at least one."""
    return max(1, round(clusters * share))


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
    """Approximate search: score the frequent tags and the members of the best-scoring clusters exactly."""

    def __init__(self, vectors: torch.Tensor, clustering: Callable[[], tuple[np.ndarray, torch.Tensor]],
                 probes: int | None = None):
        """``clustering()`` gives (assignment, centroids): (V,) each tag's cluster and (clusters, D) each
        cluster's centre in the engine's space (the method's label space of the unit mean direction), scored
        like a tag. It is called when the first photo is searched approximately: the calibration photos
        before it do not need the clusters (k-means takes minutes at millions of tags)."""
        self.vectors = vectors.float().contiguous()
        self._clustering: Callable[[], tuple[np.ndarray, torch.Tensor]] | None = clustering
        self._probes = probes
        self.calibration_photos = CALIBRATION_PHOTOS
        self.calibrated = 0  # photos ranked exactly so far
        self._scan: Vocabulary | None = None  # the exact scan, while calibrating
        self.is_frequent = torch.zeros(len(self.vectors), dtype=torch.bool)
        self.frequent = torch.zeros(0, dtype=torch.long)  # the tags set in is_frequent, ascending
        self._frequent_scan: Vocabulary | None = None  # the exact scan of the frequent tags, once needed

    def _cluster(self) -> None:
        if self._clustering is None:
            return
        assignment, centroids = self._clustering()
        self._clustering = None
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
        self._centroids = centroids.float()[kept]  # empty clusters are never probed
        self._centroid_scan = Vocabulary(self._centroids, torch.float32)

    @property
    def centroids(self) -> torch.Tensor:
        """(clusters, D): the centres of the non-empty clusters (clustering now if not yet done)."""
        self._cluster()
        return self._centroids

    def _rank_centroids(self, factors: torch.Tensor, reduce: str) -> torch.Tensor:
        """(B, clusters): each photo's clusters, the best-scoring centre first. For ‖F w‖ through the quadratic
        form where it is the cheaper product (its rounding only affects which clusters are probed)."""
        self._cluster()
        if reduce == "norm" and self._centroid_scan.uses_quadratic_form(factors, reduce):
            features, _ = self._centroid_scan.quadratic(0, len(self._centroid_scan))
            return (features.float() @ quadratic_query(factors)).T.argsort(dim=1, stable=True)
        sign = -1.0 if reduce == "norm" else 1.0  # relevance: larger is better
        return (sign * exact_scores(factors, self.centroids, reduce)).argsort(dim=1, descending=True, stable=True)

    @property
    def probes(self) -> int:
        """Clusters probed per photo (default: the :data:`PROBED_SHARE` of them)."""
        return self._probes if self._probes is not None else probed(len(self.centroids))

    @probes.setter
    def probes(self, value: int) -> None:
        self._probes = value

    def __len__(self) -> int:
        return self.vectors.shape[0]

    def calibrate(self, factors: torch.Tensor, k: int, reduce: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The exact top ``k`` (the torch scan's) of each photo; its top :data:`FREQUENT_PER_PHOTO` join the
        frequent tags."""
        if self._scan is None:
            self._scan = Vocabulary(self.vectors)
        scores, indices = top_k(factors, self._scan, max(k, FREQUENT_PER_PHOTO), reduce)
        self.is_frequent[indices[:, :FREQUENT_PER_PHOTO].flatten()] = True
        self.frequent = self.is_frequent.nonzero().squeeze(1)
        self._frequent_scan = None
        self.calibrated += factors.shape[0]
        if self.calibrated >= self.calibration_photos:
            self._scan = None  # its cached quadratic features can take GBs
        return scores[:, :k], indices[:, :k]

    def top_k(self, factors: torch.Tensor, k: int, reduce: str) -> tuple[torch.Tensor, torch.Tensor]:
        k = min(k, len(self))
        if self.calibrated < self.calibration_photos:
            return self.calibrate(factors, k, reduce)
        sign = -1.0 if reduce == "norm" else 1.0  # relevance: larger is better
        ranked = self._rank_centroids(factors, reduce)  # (clusters the vocabulary if not yet done)
        probes, batch = self.probes, factors.shape[0]
        # Each photo's best `probes` clusters, and more while they hold fewer than k tags.
        wanted = ((torch.cumsum(self.sizes[ranked], 1) < k).sum(1) + 1).clamp(min=probes, max=ranked.shape[1])
        chosen = ranked[:, :int(wanted.max())]
        sizes = torch.where(torch.arange(chosen.shape[1]) < wanted[:, None], self.sizes[chosen], 0).flatten()
        # The rows of the chosen clusters in the cluster-sorted members, without a loop over clusters or photos.
        rows = torch.arange(int(sizes.sum())) + torch.repeat_interleave(self.starts[chosen].flatten() -
                                                                         (torch.cumsum(sizes, 0) - sizes), sizes)
        image = torch.repeat_interleave(torch.arange(batch), sizes.view(batch, -1).sum(1))
        fresh = ~self.is_frequent[self.order[rows]]  # the frequent tags are scored for the whole batch below
        image = image[fresh]
        padded, slot = pad_rows(image, rows[fresh], batch)
        relevance = torch.full(padded.shape, float("-inf"))
        step = max(1, PROBED_ELEMENTS // max(1, padded.shape[1] * self.vectors.shape[1]))
        for b in range(0, batch, step):  # (photos, candidates, D) at a time, bounded
            part = padded[b:b + step]  # (index_select gathers rows ~2x faster than indexing)
            probed_vectors = self.members.index_select(0, part.flatten()).view(*part.shape, -1)
            scores = sign * exact_scores(factors[b:b + step], probed_vectors, reduce)
            mine = (image >= b) & (image < b + step)
            relevance[image[mine], slot[mine]] = scores[image[mine] - b, slot[mine]]
        # The frequent tags' best, by the exact scan over them alone (one product for the whole batch).
        if self._frequent_scan is None:
            self._frequent_scan = Vocabulary(self.vectors[self.frequent])
        frequent_rel, frequent_idx = top_k(factors, self._frequent_scan, CANDIDATES_PER_RESULT * k, reduce)
        relevance = torch.cat([sign * frequent_rel, relevance], 1)
        tags = torch.cat([self.frequent[frequent_idx], self.order[padded]], 1)
        # topk first: ordering all candidates by (relevance, index) would cost more than scoring them
        relevance, where = relevance.topk(min(tags.shape[1], CANDIDATES_PER_RESULT * k), dim=1)
        relevance, indices = select(relevance, tags.gather(1, where), k)
        return sign * relevance, indices


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
    (default: ``vectors``) when it first searches approximately; the centres, unit mean directions of raw
    vectors, go through ``label_space`` like any tag (for a label space with constant coordinates, a mean of
    label vectors would not).
    """
    if check_search(search) == "auto":
        if len(vectors) >= APPROX_MIN_TAGS:
            search = "approx"
            log.warning("ranking %s tags approximately after the first %d photos (their top tags and the best "
                        "clusters are scored); --search exact scores every tag",
                        f"{len(vectors):,}", CALIBRATION_PHOTOS)
        else:
            # FAISS holds quadratic features for ‖F w‖: too wide for some label spaces (the name row's)
            fits = reduce != "norm" or len(vectors) * quadratic_width(vectors) <= FAISS_MAX_ELEMENTS
            search = "faiss" if fits and FaissVocabulary.gpus() > 0 else "exact"
    if search == "exact":
        return Vocabulary(vectors)
    if search == "faiss":
        return FaissVocabulary(vectors, reduce)

    def clustering() -> tuple[np.ndarray, torch.Tensor]:
        index = clusters
        if index is None:
            unit = torch.nn.functional.normalize(torch.as_tensor(raw if raw is not None else vectors).float(), dim=1)
            index = cluster_index(unit.numpy(), default_clusters(len(vectors)))
        centres = torch.nn.functional.normalize(torch.from_numpy(cluster_centres(index)), dim=1)
        with torch.no_grad():
            centres = label_space(centres) if label_space is not None else centres
        return cluster_assignment(index), centres

    return ClusteredVocabulary(vectors, clustering)
