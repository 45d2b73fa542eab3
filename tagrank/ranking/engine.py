"""The ranking engine: exact top-K of a vocabulary for a batch of images, at any vocabulary size.

Zero-shot methods give each image a factor F (m×d) and score a word vector w as ‖F w‖₂ (transform),
F·w (Fast0Tag) or F·w/‖w‖ (ConSE).

For ‖F w‖ the engine uses ‖F w‖² = wᵀ G w with G = FᵀF (= AᵀA), written as one dot product between
the d(d+1)/2 quadratic features of w, (w_i·w_j)_{i≤j}, and the matching entries of G (off-diagonal
ones doubled). A block of the vocabulary then costs one matrix product with a d(d+1)/2-long inner
dimension for the whole batch of images: V·d(d+1)/2 multiply-adds per image (less than the V·d·min(k, d)
of forming F w), no V×k intermediate, and a GEMM shape the CPU runs near its peak.

That product only *selects candidates*, and it may run in bfloat16 (:func:`scan_dtype`: where the CPU
multiplies it faster than float32, ~3× on AVX512-BF16). Its rounding error is bounded for every tag
and image (:func:`rounding_bound`: the unit roundoff times ‖features‖·‖query‖ by Cauchy–Schwarz), and a
tag is admitted when its score less that bound can still beat τ, the K-th best *exact* score found so
far. Admitted tags are scored exactly as ‖F w‖ (:func:`exact_scores`, float32), so the result is the
exact top K whatever precision selected them (and the cancellation a quadratic form suffers when a
distance is tiny never decides an order).

Blocks bound memory for any V; a running set of 4·K candidates per image is merged block by block and
scored once more together at the end. Ties are broken by vocabulary order (the lower index wins), so
rankings are reproducible; this holds whenever at most 3·K tags tie at the cut (the candidates then
hold the whole tied group).
"""

from __future__ import annotations

import functools
import math
import os
import time

import torch

from tagrank.errors import TagrankError

BLOCK_ELEMENTS = 1 << 22
"""Elements of one block's working matrix (16 MiB of float32): large enough for an efficient GEMM,
small enough to stay near the CPU caches."""

CANDIDATES_PER_RESULT = 4
"""Candidates kept per requested result before exact re-scoring."""

CACHE_ELEMENTS = 1 << 29
"""Quadratic features of a vocabulary are kept between calls up to this many elements (2 GiB: GloVe's 400k
words at d = 50 fit; building them for every batch halves the scan's speed)."""


SCAN_DTYPE_ENV = "TAGRANK_SCAN_DTYPE"
"""Set to ``float32`` or ``bfloat16`` to fix the quadratic scan's precision instead of measuring it."""

UNIT_ROUNDOFF = {torch.float32: 2.0 ** -24, torch.bfloat16: 2.0 ** -8}

LOW_PRECISION_MIN_TAGS = 50_000
"""Smaller vocabularies scan in float32 without measuring which is faster: the scan takes milliseconds."""


@functools.cache
def scan_dtype() -> torch.dtype:
    """The precision the quadratic scan selects candidates in: bfloat16 where this process multiplies it at
    least 1.5× faster than float32 (CPUs with AVX512-BF16 or AMX, measured once on a scan-shaped product),
    else float32. Results are the same either way; only the time differs."""
    chosen = os.environ.get(SCAN_DTYPE_ENV)
    if chosen:
        if chosen not in ("float32", "bfloat16"):
            raise TagrankError(f"{SCAN_DTYPE_ENV} must be float32 or bfloat16, got {chosen!r}")
        return getattr(torch, chosen)
    generator = torch.Generator().manual_seed(0)
    features, query = torch.randn(4096, 1275, generator=generator), torch.randn(1275, 64, generator=generator)
    seconds = {}
    for dtype in (torch.float32, torch.bfloat16):
        a, b = features.to(dtype), query.to(dtype)
        a @ b  # warm
        start = time.perf_counter()
        for _ in range(3):
            a @ b
        seconds[dtype] = time.perf_counter() - start
    return torch.bfloat16 if seconds[torch.bfloat16] * 1.5 <= seconds[torch.float32] else torch.float32


def quadratic_width(vectors: torch.Tensor) -> int:
    """Width of the quadratic features of (V, d) vectors: d(d+1)/2."""
    return vectors.shape[1] * (vectors.shape[1] + 1) // 2


def quadratic_features(vectors: torch.Tensor) -> torch.Tensor:
    """(V, d(d+1)/2): w_i·w_j for i ≤ j, row by row (contiguous slices beat a gather by ~2x)."""
    d = vectors.shape[1]
    return torch.cat([vectors[:, i:i + 1] * vectors[:, i:] for i in range(d)], dim=1)


class Vocabulary:
    """Label vectors (V, d) prepared for the engine; caches their quadratic features when small enough.

    The exact torch scan (``--search exact``); :mod:`tagrank.ranking.search` has the other engines.
    """

    def __init__(self, vectors: torch.Tensor, dtype: torch.dtype | None = None):
        """``dtype``: the quadratic scan's precision (default: :func:`scan_dtype`, decided at the first scan,
        from :data:`LOW_PRECISION_MIN_TAGS` tags; float32 below)."""
        self.vectors = vectors.float().contiguous()
        self.width = quadratic_width(self.vectors)
        self.dtype = dtype
        self._quadratic: tuple[torch.Tensor, torch.Tensor] | None = None
        self._cacheable = self.vectors.shape[0] * self.width <= CACHE_ELEMENTS

    def __len__(self) -> int:
        return self.vectors.shape[0]

    @property
    def cached(self) -> bool:
        return self._cacheable

    def precision(self) -> torch.dtype:
        """The quadratic scan's precision, decided at the first call when not given."""
        if self.dtype is None:
            self.dtype = scan_dtype() if len(self) >= LOW_PRECISION_MIN_TAGS else torch.float32
        return self.dtype

    def quadratic(self, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The quadratic features of tags start..stop in the scan's precision, and their float32 norms."""
        if self._cacheable:
            if self._quadratic is None:
                self._quadratic = self._features(self.vectors)
            return self._quadratic[0][start:stop], self._quadratic[1][start:stop]
        return self._features(self.vectors[start:stop])

    def _features(self, vectors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = quadratic_features(vectors)
        return features.to(self.precision()), torch.linalg.vector_norm(features, dim=1)

    def top_k(self, factors: torch.Tensor, k: int, reduce: str) -> tuple[torch.Tensor, torch.Tensor]:
        return top_k(factors, self, k, reduce)

    def uses_quadratic_form(self, factors: torch.Tensor, reduce: str) -> bool:
        """Whether the scan takes the quadratic form (V·d(d+1)/2 multiply-adds per image) or the direct
        product with the stacked factors (V·d·m): the former when its features are cached or the batch is
        wide enough to amortise building them, unless it is more than twice the work (wide label spaces)."""
        batch, m, d = factors.shape
        return reduce == "norm" and self.width <= 2 * m * d and (self.cached or batch * m >= self.width)


def quadratic_query(factors: torch.Tensor) -> torch.Tensor:
    """(d(d+1)/2, B): the entries of G = FᵀF matching :func:`quadratic_features` (off-diagonal doubled),
    so that quadratic_features(w) @ query = ‖F w‖²."""
    d = factors.shape[2]
    rows, cols = torch.triu_indices(d, d)
    gram = factors.transpose(1, 2) @ factors  # (B, d, d)
    weights = torch.where(rows == cols, 1.0, 2.0)
    return (gram[:, rows, cols] * weights).T.contiguous()


def staircase(factors: torch.Tensor) -> tuple[int, list[int]]:
    """(c, tail): the rows ``tail`` are the only ones with non-zero entries from column c on, c chosen to
    make the direct product cheapest (m·c + |tail|·(d − c) per label; c = d, no tail, when nothing gains).

    A method's label space may append coordinates that few rows read (the transformation model's name
    row reads 1,000 columns no other row does); the scan then skips their zeros.
    """
    m, d = factors.shape[1:]
    used = (factors != 0).any(dim=0)  # (m, d)
    reach = torch.where(used.any(dim=1), d - used.flip(1).int().argmax(dim=1), 0)  # 1 + last used column, per row
    best, best_cost = d, m * d
    for c in reach.unique().tolist():
        cost = m * c + int((reach > c).sum()) * (d - c)
        if cost < best_cost:
            best, best_cost = c, cost
    return best, (reach > best).nonzero().flatten().tolist()


def top_k(factors: torch.Tensor, vocabulary: Vocabulary | torch.Tensor, k: int, reduce: str,
          block: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact top-``k`` labels per image.

    ``factors`` (B, m, d), ``vocabulary`` (V, d) vectors or a :class:`Vocabulary`. Returns
    ``(scores, indices)``, each (B, k'), best first, with k' = min(k, V); scores in the method's own
    units (distance ‖F w‖ for ``"norm"``).
    """
    if not isinstance(vocabulary, Vocabulary):
        vocabulary = Vocabulary(vocabulary)
    k = min(k, len(vocabulary))
    if vocabulary.uses_quadratic_form(factors, reduce):
        return quadratic_top_k(factors, vocabulary, k, block)
    vectors = vocabulary.vectors
    batch, m, d = factors.shape
    n_vectors = vectors.shape[0]
    width, tail = d, []
    stairs = staircase(factors) if reduce == "norm" else None
    if reduce == "norm":
        width, tail = stairs
        query = factors[:, :, :width].reshape(batch * m, width).T.contiguous()  # (width, B·m)
        tail_query = factors[:, tail, width:].reshape(batch * len(tail), d - width).T.contiguous()
    else:
        query = factors[:, 0, :].T.contiguous()  # (d, B)
    keep = min(n_vectors, CANDIDATES_PER_RESULT * k)
    if block is None:
        block = max(16, BLOCK_ELEMENTS // max(query.shape[0], batch))
    best_rel = torch.full((batch, 0), float("-inf"))
    best_idx = torch.zeros((batch, 0), dtype=torch.long)
    for start in range(0, n_vectors, block):
        stop = min(start + block, n_vectors)
        if reduce == "norm":
            product = (vectors[start:stop, :width] @ query).view(stop - start, batch, m)
            if tail:
                product[:, :, tail] += (vectors[start:stop, width:] @ tail_query).view(stop - start, batch, len(tail))
            relevance = -product.square_().sum(dim=2).T
        else:
            chunk = vectors[start:stop]
            relevance = (chunk @ query).T
            if reduce == "cosine":
                relevance = relevance / chunk.norm(dim=1).clamp_min(1e-12)
        rel, idx = relevance.topk(min(keep, relevance.shape[1]), dim=1)
        best_rel = torch.cat([best_rel, rel], dim=1)
        best_idx = torch.cat([best_idx, idx + start], dim=1)
        if best_rel.shape[1] > 4 * keep:  # keep the running candidate set small
            best_rel, best_idx = select(best_rel, best_idx, keep)
    return finish(factors, vectors, best_idx, k, reduce, stairs=stairs)


def rounding_bound(factors: torch.Tensor, query: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B,) e_b such that, for every tag w, a scanned ‖F_b w‖² s̃ (the product of the tag's quadratic
    features f and the query q, in ``dtype``) is within e_b·‖f‖ + 2u·|s̃| of its exact score squared.

    Rounding f and q to ``dtype`` (u each) moves their product by at most (2u + u²)·Σ|f_i q_i| ≤ (…)·‖f‖·‖q‖
    (Cauchy–Schwarz), the float32 accumulation of n products by n·u₃₂ times as much, and rounding the
    result to ``dtype`` by u·|s̃| (the 2u·|s̃| the caller adds). The query itself, G = FᵀF summed over m
    rows, and the exact score, ‖F w‖ summed over d columns, carry float32 rounding of at most
    (m + d)·u₃₂·√2·‖F‖²_F·‖f‖ together; that smaller term gets a 4× margin.
    """
    n = query.shape[0]
    batch, m, d = factors.shape
    u, u32 = UNIT_ROUNDOFF[dtype], UNIT_ROUNDOFF[torch.float32]
    scan = (2 * u + u * u + (n + 8) * u32) * torch.linalg.vector_norm(query, dim=0)
    reference = 4 * (m + d + 16) * u32 * math.sqrt(2) * factors.square().sum(dim=(1, 2))
    return scan + reference


def quadratic_top_k(factors: torch.Tensor, vocabulary: Vocabulary, k: int,
                    block: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact top-``k`` of ‖F w‖ through the quadratic form: each block's product (in the vocabulary's scan
    precision) admits the tags whose score, less its :func:`rounding_bound`, can still beat τ, the k-th best
    exact score so far; those are scored exactly and merged into the running best 4·k, which are scored
    once more together for the final order (scores of one call round a repeated vector alike: ties)."""
    vectors = vocabulary.vectors
    batch = factors.shape[0]
    keep = min(len(vectors), CANDIDATES_PER_RESULT * k)
    query = quadratic_query(factors)  # (n, B)
    if block is None:
        block = max(16, BLOCK_ELEMENTS // max(query.shape[0], batch))
    precision = vocabulary.precision()
    margin = rounding_bound(factors, query, precision)
    shrink = 1 - 2 * UNIT_ROUNDOFF[precision]  # the result's own rounding (see rounding_bound)
    scan_query = query.to(precision)
    stairs = staircase(factors)
    best_rel = torch.full((batch, 0), float("-inf"))  # the best so far: -‖F w‖, best first
    best_idx = torch.zeros((batch, 0), dtype=torch.long)
    for start in range(0, len(vectors), block):
        stop = min(start + block, len(vectors))
        features, norms = vocabulary.quadratic(start, stop)
        scanned = (features @ scan_query).float().T  # (B, block): squared distances, rounded
        if best_rel.shape[1] < k:  # the best-looking tags, scored exactly, give τ a value to start from
            seeds = scanned.topk(min(k, stop - start), dim=1, largest=False).indices + start
            seed_scores = exact_scores(factors, vectors[seeds], "norm", stairs)
            tau = seed_scores.amax(dim=1) if seeds.shape[1] == k else torch.full((batch,), float("inf"))
        else:
            tau = -best_rel[:, k - 1]  # no tag scoring above it can be in the top k
        # a bound below each tag's exact squared score (for s̃ < 0 it stays below 0 ≤ τ²: admitted either way)
        lower = scanned.mul(shrink).sub_(torch.outer(margin, norms))
        image, tag = (lower <= tau.square()[:, None]).nonzero(as_tuple=True)
        if len(image) == 0:
            continue
        candidates, slot = pad_rows(image, tag + start, batch)
        relevance = torch.full(candidates.shape, float("-inf"))
        relevance[image, slot] = -exact_scores(factors, vectors[candidates], "norm", stairs)[image, slot]
        best_rel, best_idx = select(torch.cat([best_rel, relevance], dim=1), torch.cat([best_idx, candidates], dim=1),
                                    keep)
    # padding (-inf) never makes it: at least k tags were admitted
    return finish(factors, vectors, best_idx, k, "norm", filled=best_rel > float("-inf"), stairs=stairs)


def pad_rows(image: torch.Tensor, values: torch.Tensor, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image lists as one (batch, longest list) matrix, 0 where padded: ``values[i]`` goes to row
    ``image[i]`` (``image`` ascending), lists in their order. Returns the matrix and each value's column."""
    counts = torch.bincount(image, minlength=batch)
    slot = torch.arange(len(image)) - torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
    padded = torch.zeros((batch, int(counts.max())), dtype=values.dtype)
    padded[image, slot] = values
    return padded, slot


def finish(factors: torch.Tensor, vectors: torch.Tensor, candidates: torch.Tensor, k: int, reduce: str,
           filled: torch.Tensor | None = None,
           stairs: tuple[int, list[int]] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The final order of candidate tags (B, C): their exact scores, the best ``k`` first, ties to the
    lower vocabulary index; ``filled`` (B, C) marks the real candidates where rows are padded, ``stairs``
    is the factors' :func:`staircase` when the caller has it. Every engine ends here, so engines that find
    the same candidates agree."""
    sign = -1.0 if reduce == "norm" else 1.0  # relevance: larger is better
    relevance = sign * exact_scores(factors, vectors[candidates], reduce, stairs)
    if filled is not None:
        relevance = relevance.masked_fill(~filled, float("-inf"))
    relevance, indices = select(relevance, candidates, k)
    return sign * relevance, indices


def exact_scores(factors: torch.Tensor, vectors: torch.Tensor, reduce: str,
                 stairs: tuple[int, list[int]] | None = None) -> torch.Tensor:
    """(B, V) scores of label vectors (V, d), or per-image candidates (B, V, d), computed directly;
    ``stairs``: the factors' :func:`staircase` when the caller has it."""
    per_image = vectors.dim() == 3
    pattern = "bmd,bcd->bcm" if per_image else "bmd,cd->bcm"
    if reduce == "norm":
        width, tail = stairs if stairs is not None else staircase(factors)
        projected = torch.einsum(pattern, factors[:, :, :width], vectors[..., :width])
        if tail:
            projected[:, :, tail] += torch.einsum(pattern, factors[:, tail, width:], vectors[..., width:])
        return torch.linalg.vector_norm(projected, dim=2)
    projected = torch.einsum(pattern, factors, vectors)
    out = projected[..., 0]
    if reduce == "cosine":
        out = out / vectors.norm(dim=-1).clamp_min(1e-12)
    return out


def select(relevance: torch.Tensor, indices: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k best candidates per row, best first, ties to the lower vocabulary index."""
    by_index = indices.argsort(dim=1, stable=True)
    relevance, indices = relevance.gather(1, by_index), indices.gather(1, by_index)
    order = relevance.argsort(dim=1, descending=True, stable=True)[:, :k]
    return relevance.gather(1, order), indices.gather(1, order)


def rank_scores(scores: torch.Tensor, k: int, lower_is_better: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``k`` of a full (B, V) score matrix (label-scoring methods), same tie rule as :func:`top_k`."""
    relevance = -scores if lower_is_better else scores
    index = torch.arange(scores.shape[1]).expand_as(scores)
    rel, idx = select(relevance, index, min(k, scores.shape[1]))
    return (-rel if lower_is_better else rel), idx


def explain_votes(matrices: torch.Tensor, vectors: torch.Tensor, tags: torch.Tensor, top: int) -> torch.Tensor:
    """The voting committee (the paper, section 4.4): each row a_r of A is a classifier ranking tags by
    |a_r·w| (small = relevant). Returns, for each image's ``tags`` (B, K), how many of the k rows rank
    that tag in their own top-``top`` of the vocabulary."""
    votes = torch.zeros(tags.shape, dtype=torch.long)
    for b in range(matrices.shape[0]):
        per_row = (vectors @ matrices[b].T).abs()  # (V, k)
        row_top = per_row.topk(min(top, vectors.shape[0]), dim=0, largest=False).indices  # (top, k)
        hits = torch.zeros(vectors.shape[0], dtype=torch.long)
        hits.index_add_(0, row_top.reshape(-1), torch.ones(row_top.numel(), dtype=torch.long))
        votes[b] = hits[tags[b]]
    return votes
