"""How the ranking engine searches a vocabulary (``tagrank rank --search``).

* ``exact``  - the torch scan of :mod:`tagrank.ranking.engine`: every tag scored.
* ``faiss``  - the same exact search in a FAISS flat inner-product index, on GPU when the faiss-gpu build
  sees one. For ‖F w‖ the index holds the quadratic features of the vectors and each image queries with
  its weighted Gram entries (the torch scan's quadratic form); candidates are re-scored exactly, so the
  results are the torch scan's.
* ``approx`` - the tags the model keeps ranking high (the *frequent* tags), scored exactly, and the top K
  taken from them: |frequent| scores per image instead of V, exact wherever the true top K lies among them
  (how often it does depends on the vocabulary and the model: BENCHMARKS.md, *Engine*, has measured recall).
  The frequent tags are learned from the photos ranked: the first photos are ranked *exactly* (every tag
  scored) and the top :data:`FREQUENT_PER_PHOTO` of each join them, until the frequent tags already held
  :data:`TARGET_SHARE` of each new photo's exact top :data:`SHARE_AT` over the last :data:`SHARE_WINDOW`
  photos (a running estimate of the search's recall on photos like them), or after
  :data:`CALIBRATION_PHOTOS`. A model's best tags over a large vocabulary concentrate on a few thousand
  (GloVe's 400k words: the top 50 of 2,048 photos are 10.6k words holding 99.3 % of other photos' top 5).
  The frequent tags are kept on disk (:class:`FrequentTagMemory`, keyed by model and vocabulary), so the
  next process starts from them and needs only the :data:`SHARE_WINDOW` photos that re-check them.
  It can also probe a clustered vocabulary (a FAISS IVF index of the unit label vectors, k-means on the
  sphere; each centre scored like a tag) and score the members of the ``probes`` best clusters; by default
  it does so only where fewer than K tags are frequent: a centre's direction says little about its outlying
  members, and on validation photos probing 1 or 2 of them found at most 0.1 % more of the top 5.
* ``auto``   - ``approx`` from :data:`APPROX_MIN_TAGS` tags, else ``faiss`` where FAISS sees a GPU, else
  ``exact``.

Every engine has ``vectors`` (V, D), ``len()`` and ``top_k(factors, k, reduce)`` with the torch scan's
contract: (scores, indices), best first, ties to the lower vocabulary index.
"""

from __future__ import annotations

import json
import math
import os
from collections import deque
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from tagrank._log import log
from tagrank.errors import TagrankError
from tagrank.ranking.engine import CANDIDATES_PER_RESULT, Vocabulary, exact_scores, finish, pad_rows, \
    quadratic_features, quadratic_query, quadratic_width, scan_dtype, select, top_k

SEARCHES = ("auto", "exact", "faiss", "approx")
APPROX_MIN_TAGS = 1_000_000
"""``auto`` searches approximately from this many tags (the exact scan then costs ≥ 0.3 s per photo at d=300)."""
PROBED_SHARE = 0.0
"""Share of the clusters ``approx`` probes by default beside the frequent tags: none. Chosen on Corel5k training
photos (scripts/bench_rank.py --split validation, 2026-12-02): once the frequent tags are learned as above, the
GloVe model over GloVe's 400k words finds 99.1 % of 256 photos' top 5 and 98.8 % of their top 10 probing 0, 1 or
2 of 1,024 clusters alike, at 14.1x, 10.8x and 11.1x the exact scan's speed; over 100k words 98.0 % probing none
and 98.1 % probing 1 of 512 (6.4x and 4.3x). (With 512 calibration photos and no
more, probing 1, 2 or 4 had raised recall@5 from 0.956 to 0.966.) A cluster's centre says little about its
outlying members, so probing is a thin net for photos unlike the calibration ones; ``probes`` sets it."""
COSINE_PROBED_SHARE = 1 / 16
"""Share of the clusters a label index's cosine search (nearest tags) probes: it has no frequent tags."""
CALIBRATION_PHOTOS = 2048
"""``approx`` ranks at most this many photos exactly first; their top tags become the frequent tags it always
scores. It stops sooner where the running share below reaches :data:`TARGET_SHARE` (scripts/bench_rank.py,
Corel5k training photos in random order: the GloVe model over 400k words after 1,600 photos, 63 s; the default
model over 399k words, whose exact scan takes ~1 s per photo, after 1,152, 22 min)."""
FREQUENT_PER_PHOTO = 50
"""How many of each calibration photo's exact top tags join the frequent tags."""
SHARE_AT, SHARE_WINDOW, TARGET_SHARE = 10, 256, 0.985
"""Calibration ends once the frequent tags held 98.5 % of the exact top 10 of the last 256 photos ranked
exactly (each batch checked against the frequent tags before it joined them). Validation, GloVe model over
400k words, Corel5k training photos in random order: that share was 0.920, 0.975, 0.983, 0.988 after 512,
1,024, 1,536 and 2,048 photos, and the frequent tags alone then found 97.0, 98.4, 99.0 and 99.3 % of 256
other photos' top 5."""
KMEANS_ITERATIONS = 20
KMEANS_POINTS_PER_CLUSTER = 64
"""k-means trains on at most this many vectors per cluster (a sample; every vector is then assigned)."""
PROBED_ELEMENTS = 1 << 24
"""``approx`` gathers the probed tags' vectors for this many elements (64 MiB) of photos × tags × D at a time."""
FAISS_MAX_ELEMENTS = 1 << 30
"""The flat FAISS index of quadratic features is refused beyond this many floats (4 GiB)."""
REMEMBERED_VOCABULARIES = 16
"""Entries the frequent-tag memory keeps (the most recently written)."""


def check_search(search: str) -> str:
    if search not in SEARCHES:
        raise TagrankError(f"--search must be one of {', '.join(SEARCHES)}, got {search!r}")
    return search


def default_clusters(n_vectors: int) -> int:
    """Clusters for a vocabulary of ``n_vectors``: about 2·√V, a power of two (1,024 at 400k, 4,096 at 3M)."""
    return int(2 ** round(math.log2(max(2.0 * math.sqrt(n_vectors), 1.0))))


def probed(clusters: int, share: float) -> int:
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


class FrequentTagMemory:
    """The frequent tags an ``approx`` search learned, on disk for the next process that ranks the same
    vocabulary with the same model (``path`` is keyed by both): learning them again takes ~20 min for the
    default model over 399k words.

    Recalled tags are only a head start: a run still ranks its first :data:`SHARE_WINDOW` photos exactly and
    goes approximate only once the tags held :data:`TARGET_SHARE` of their top tags, so photos unlike the
    earlier ones (or a stale entry) make it learn on as if from scratch. Tags learned join the stored ones.
    A damaged or unwritable entry is ignored."""

    def __init__(self, path: str | os.PathLike, size: int):
        self.path = Path(path)
        self.size = size  # the vocabulary's tags: an entry for another size is not this vocabulary's

    def recall(self) -> torch.Tensor | None:
        """The stored frequent tags (ascending indices), or None."""
        from safetensors import safe_open

        try:
            with safe_open(str(self.path), framework="pt") as f:
                size = json.loads(f.metadata()["tagrank"])["vocabulary_size"]
                frequent = f.get_tensor("frequent").long()
        except FileNotFoundError:
            return None
        except Exception as exc:  # never trusted when damaged: learned again
            log.debug("frequent tags %s not recalled: %s", self.path, exc)
            return None
        in_range = frequent.ndim == 1 and (len(frequent) == 0 or (frequent.min() >= 0 and frequent.max() < size))
        if size != self.size or not in_range:
            log.debug("frequent tags %s are not this vocabulary's: learned again", self.path)
            return None
        return frequent

    def keep(self, frequent: torch.Tensor) -> None:
        """Store the frequent tags (atomically; the least recently written entries beyond
        :data:`REMEMBERED_VOCABULARIES` go)."""
        from safetensors.torch import save

        from tagrank.atomic import atomic_file, keep_newest

        meta = {"tagrank": json.dumps({"vocabulary_size": self.size})}
        try:
            with atomic_file(self.path) as f:
                f.write(save({"frequent": frequent.to(torch.int32).contiguous()}, metadata=meta))
            keep_newest(self.path.parent, "*.safetensors", REMEMBERED_VOCABULARIES)
        except (OSError, TagrankError) as exc:
            log.debug("frequent tags not kept (%s)", exc)


class ClusteredVocabulary:
    """Approximate search: score the frequent tags (and the members of the best-scoring clusters) exactly."""

    def __init__(self, vectors: torch.Tensor, clustering: Callable[[], tuple[np.ndarray, torch.Tensor]],
                 probes: int | None = None, memory: FrequentTagMemory | None = None):
        """``clustering()`` gives (assignment, centroids): (V,) each tag's cluster and (clusters, D) each
        cluster's centre in the engine's space (the method's label space of the unit mean direction), scored
        like a tag. It is called when the first photo is searched approximately: the calibration photos
        before it do not need the clusters (k-means takes minutes at millions of tags). ``memory``: where
        the frequent tags of an earlier process are recalled from and the ones learned here are kept."""
        self.vectors = vectors.float().contiguous()
        self._clustering: Callable[[], tuple[np.ndarray, torch.Tensor]] | None = clustering
        self._probes = probes
        self.calibration_photos = CALIBRATION_PHOTOS  # at most
        self.calibrated = 0  # photos ranked exactly so far
        self.shares: deque[float] = deque(maxlen=SHARE_WINDOW)  # of each one's top SHARE_AT, already frequent
        self._scan: Vocabulary | None = None  # the exact scan, while calibrating
        self.is_frequent = torch.zeros(len(self.vectors), dtype=torch.bool)
        self.frequent = torch.zeros(0, dtype=torch.long)  # the tags set in is_frequent, ascending
        self._frequent_scan: Vocabulary | None = None  # the exact scan of the frequent tags, once needed
        self.memory = memory
        recalled = memory.recall() if memory is not None else None
        self.recalled = 0 if recalled is None else len(recalled)  # frequent tags an earlier run learned
        if self.recalled:
            self.is_frequent[recalled] = True
            self.frequent = self.is_frequent.nonzero().squeeze(1)
            log.info("recalled %s frequent tags of an earlier run: checking them on the first %d photos, "
                     "ranked exactly", f"{len(self.frequent):,}", SHARE_WINDOW)

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
        """Clusters probed per photo (default: the :data:`PROBED_SHARE` of them; none without clustering)."""
        if self._probes is not None:
            return self._probes
        return probed(len(self.centroids), PROBED_SHARE) if PROBED_SHARE > 0 else 0

    @probes.setter
    def probes(self, value: int) -> None:
        self._probes = value

    def __len__(self) -> int:
        return self.vectors.shape[0]

    @property
    def share(self) -> float | None:
        """The running share of the last calibration photos' exact top :data:`SHARE_AT` that were already
        frequent tags (None before :data:`SHARE_WINDOW` photos): about the recall of the frequent tags alone."""
        return sum(self.shares) / len(self.shares) if len(self.shares) == self.shares.maxlen else None

    @property
    def calibrating(self) -> bool:
        """Whether the next photos are still ranked exactly (see :data:`TARGET_SHARE`)."""
        share = self.share
        return self.calibrated < self.calibration_photos and (share is None or share < TARGET_SHARE)

    def calibrate(self, factors: torch.Tensor, k: int, reduce: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The exact top ``k`` (the torch scan's) of each photo; its top :data:`FREQUENT_PER_PHOTO` join the
        frequent tags."""
        if self._scan is None:
            self._scan = Vocabulary(self.vectors)
        scores, indices = top_k(factors, self._scan, max(k, FREQUENT_PER_PHOTO), reduce)
        # checked before the batch joins: photos of one batch are often alike, and would vouch for each other
        self.shares.extend(self.is_frequent[indices[:, :SHARE_AT]].float().mean(dim=1).tolist())
        known = len(self.frequent)
        self.is_frequent[indices[:, :FREQUENT_PER_PHOTO].flatten()] = True
        self.frequent = self.is_frequent.nonzero().squeeze(1)
        self._frequent_scan = None
        if self.memory is not None and len(self.frequent) > known:  # kept as learned: a run may stop any time
            self.memory.keep(self.frequent)
        self.calibrated += factors.shape[0]
        if not self.calibrating:
            self._scan = None  # its cached quadratic features can take GBs
            self._report()
        return scores[:, :k], indices[:, :k]

    def _report(self) -> None:
        """Say how the approximate search starts: a warning where its frequent tags never came to hold the
        new photos' top tags (photos with little in common, or too few photos to tell)."""
        learned = f"{len(self.frequent):,} frequent tags learned from {self.calibrated} photos ranked exactly"
        if self.recalled:
            learned += f" and an earlier run (which gave {self.recalled:,})"
        share = self.share
        if share is not None and share >= TARGET_SHARE:
            log.info("approximate search from here on: %s, which held %.1f%% of the last %d photos' top %d",
                     learned, 100 * share, SHARE_WINDOW, SHARE_AT)
            return
        held = (f"too few to tell how often they hold a photo's top {SHARE_AT} tags" if share is None else
                f"which held only {share:.1%} of the last {SHARE_WINDOW} photos' top {SHARE_AT} tags")
        log.warning("approximate search from here on: %s, %s, so it may miss some of the best tags; --search exact "
                    "scores every tag", learned, held)

    def top_k(self, factors: torch.Tensor, k: int, reduce: str) -> tuple[torch.Tensor, torch.Tensor]:
        k = min(k, len(self))
        if self.calibrating:
            return self.calibrate(factors, k, reduce)
        sign = -1.0 if reduce == "norm" else 1.0  # relevance: larger is better
        # The frequent tags' best, by the exact scan over them alone (one product for the whole batch).
        if self._frequent_scan is None:  # scanned for every batch: bfloat16 pays wherever it is faster
            self._frequent_scan = Vocabulary(self.vectors[self.frequent], scan_dtype())
        relevance, tags = top_k(factors, self._frequent_scan, CANDIDATES_PER_RESULT * k, reduce)
        relevance, tags = sign * relevance, self.frequent[tags]
        if self.probes > 0 or len(self.frequent) < k:
            probed_relevance, probed_tags = self._probe(factors, k, reduce)
            relevance, tags = torch.cat([relevance, probed_relevance], 1), torch.cat([tags, probed_tags], 1)
        # topk first: ordering all candidates by (relevance, index) would cost more than scoring them
        relevance, where = relevance.topk(min(tags.shape[1], CANDIDATES_PER_RESULT * k), dim=1)
        relevance, indices = select(relevance, tags.gather(1, where), k)
        return sign * relevance, indices

    def _probe(self, factors: torch.Tensor, k: int, reduce: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(relevance, tags), (B, C) each, -inf where padded: the tags of each photo's best ``probes`` clusters
        (and more while they hold fewer than k tags) that are not frequent tags, scored exactly."""
        sign = -1.0 if reduce == "norm" else 1.0
        ranked = self._rank_centroids(factors, reduce)  # (clusters the vocabulary if not yet done)
        batch = factors.shape[0]
        wanted = ((torch.cumsum(self.sizes[ranked], 1) < k).sum(1) + 1).clamp(min=self.probes, max=ranked.shape[1])
        chosen = ranked[:, :int(wanted.max())]
        sizes = torch.where(torch.arange(chosen.shape[1]) < wanted[:, None], self.sizes[chosen], 0).flatten()
        # The rows of the chosen clusters in the cluster-sorted members, without a loop over clusters or photos.
        rows = torch.arange(int(sizes.sum())) + torch.repeat_interleave(self.starts[chosen].flatten() -
                                                                         (torch.cumsum(sizes, 0) - sizes), sizes)
        image = torch.repeat_interleave(torch.arange(batch), sizes.view(batch, -1).sum(1))
        fresh = ~self.is_frequent[self.order[rows]]  # the frequent tags are scored for the whole batch apart
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
        return relevance, self.order[padded]


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
                label_space: Callable[[torch.Tensor], torch.Tensor] | None = None, reduce: str | None = None,
                memory_key: Callable[[], str] | None = None, memory_dir: str | os.PathLike | None = None):
    """The engine for label vectors (V, D) in the method's space, ``label_space(raw)``, scored by
    ``reduce`` (when given, ``faiss`` builds its index now).

    ``memory_key()``: a key that names the model and the vocabulary, under which ``approx`` keeps its frequent
    tags in ``memory_dir`` (default: ``frequent-tags`` in the cache folder, ``TAGRANK_CACHE``) for the next
    process (called only for ``approx``).

    ``approx`` uses ``clusters`` (the IVF index of a label index) or clusters the unit ``raw`` vectors
    (default: ``vectors``) when it first searches approximately; the centres, unit mean directions of raw
    vectors, go through ``label_space`` like any tag (for a label space with constant coordinates, a mean of
    label vectors would not).
    """
    if check_search(search) == "auto":
        if len(vectors) >= APPROX_MIN_TAGS:
            search = "approx"
            log.warning("ranking %s tags approximately once the first photos (up to %d, ranked exactly) have shown "
                        "which tags rank high (then only those are scored); --search exact scores every tag",
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

    memory = None
    if memory_key is not None:
        if memory_dir is None:
            from tagrank.images.features import DEFAULT_CACHE_DIR

            memory_dir = DEFAULT_CACHE_DIR / "frequent-tags"
        memory = FrequentTagMemory(Path(memory_dir) / f"{memory_key()}.safetensors", len(vectors))
    return ClusteredVocabulary(vectors, clustering, memory=memory)
