"""Multi-label ranking metrics, vectorised: NUS-WIDE top-K per-class and overall P/R/F1, mAP, N+.

Inputs are a score matrix (N images × L labels, higher = more relevant) and a 0/1 label matrix.

Conventions (as in the paper's Tables 3-4 and ML-GCN):

* top-K: each image's K highest scores. Ties are broken by label order (the lower column index wins),
  i.e. a stable sort on the negated scores, so results never depend on the sort implementation.
* Per class c: Np = times predicted in a top-K, Nc = correct predictions, Ng = ground-truth images.
  C-P = mean_c Nc/Np (a class never predicted has precision 0), C-R = mean_c Nc/Ng,
  C-F1 = 2·C-P·C-R/(C-P + C-R) (not the mean of per-class F1s). Classes with Ng = 0 are excluded from
  the C-metrics and from class mAP, and listed.
* Overall: O-P = ΣNc/(N·K), O-R = ΣNc/ΣNg, O-F1 = 2·O-P·O-R/(O-P + O-R).
* AP as scikit-learn's ``average_precision_score``: Σ_n (R_n − R_{n−1})·P_n over distinct score
  thresholds (tied scores enter together). mAP = mean over classes with a positive; sample mAP =
  mean over images with a positive.
* Per image: P@K = correct/K, R@K = correct/|G|, F1; mean, median and std over images with a positive.
* N+ = number of classes with recall > 0 at top-K (the Corel5k convention).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from tagrank.errors import TagrankError


def _f1(p: float | np.ndarray, r: float | np.ndarray):
    p, r = np.asarray(p, dtype=np.float64), np.asarray(r, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(p + r > 0, 2 * p * r / (p + r), 0.0)


def check_inputs(scores: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores)
    truth = np.asarray(truth)
    if scores.shape != truth.shape or scores.ndim != 2:
        raise TagrankError(f"score matrix {scores.shape} and label matrix {truth.shape} differ in shape")
    if np.isnan(scores).any():
        rows = np.flatnonzero(np.isnan(scores).any(axis=1))
        raise TagrankError(f"scores contain NaN ({len(rows)} image(s), first at row {rows[0]})")
    return scores.astype(np.float32, copy=False), truth.astype(bool, copy=False)


def top_k_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """(N, k) column indices of each row's k best scores, best first, ties to the lower index: the first k
    of a stable sort by descending score.

    Without sorting: ``torch.topk`` of k + 1 per block of rows, whose order is that of the stable sort
    wherever none of the k + 1 best values are equal (no tie to break inside the k, nor at their edge);
    the rows with such a tie (rare with real scores) are sorted stably.
    """
    scores = np.require(scores, np.float32, ["C"])
    n, length = scores.shape
    out = np.empty((n, k), dtype=np.int64)
    rows = max(1, (1 << 22) // max(1, length))
    for start in range(0, n, rows):
        t = torch.from_numpy(scores[start:start + rows])
        values, indices = torch.topk(t, min(k + 1, length), dim=1, sorted=True)
        out[start:start + rows] = indices[:, :k].numpy()
        tied = torch.nonzero((values[:, 1:] == values[:, :-1]).any(dim=1)).flatten()
        if len(tied):
            stable = torch.sort(-t[tied], dim=1, stable=True).indices[:, :k]
            out[start + tied.numpy()] = stable.numpy()
    return out


def average_precision(scores: np.ndarray, truth: np.ndarray, axis: int = 0) -> np.ndarray:
    """AP of every column (``axis=0``, class-wise) or row (``axis=1``, image-wise); NaN without positives.

    Matches scikit-learn's ``average_precision_score`` including its handling of tied scores. With the
    thresholds at the distinct scores,

        AP = Σ_t (R_t − R_{t−1}) P_t = (1 / n_pos) Σ_{positive i} tp(≥ s_i) / n(≥ s_i),

    where n(≥ s) counts the items scored at least s and tp(≥ s) the positives among them: each ranking
    is sorted by value only (numpy's vectorised sort, no argsort), and the positives are looked up in it.
    Works on blocks of rankings, one per core, to bound memory at 10^8 scores.
    """
    from concurrent.futures import ThreadPoolExecutor

    scores, truth = np.asarray(scores), np.asarray(truth, dtype=bool)
    n_rankings, length = (scores.shape[1], scores.shape[0]) if axis == 0 else scores.shape
    out = np.empty(n_rankings, dtype=np.float64)
    chunk = max(1, (1 << 21) // max(1, length))

    def block(start: int) -> None:
        stop = min(start + chunk, n_rankings)
        if axis == 0:  # a block of columns, transposed into rows
            s = np.ascontiguousarray(scores[:, start:stop].T, dtype=np.float32)
            y = np.ascontiguousarray(truth[:, start:stop].T)
        else:
            s = np.ascontiguousarray(scores[start:stop], dtype=np.float32)
            y = np.ascontiguousarray(truth[start:stop])
        out[start:stop] = _ap_rows(s, y)

    # numpy's sort and torch's kernels release the GIL: one block per core.
    with ThreadPoolExecutor(max_workers=max(1, torch.get_num_threads())) as pool:
        list(pool.map(block, range(0, n_rankings, chunk)))
    return out


def _ap_rows(s: np.ndarray, y: np.ndarray) -> np.ndarray:
    """AP of each row of ``s`` (R, n) against boolean ``y`` (R, n)."""
    rows, n = s.shape
    # torch warns on read-only arrays (pandas and pyarrow hand those out); a block is small to copy.
    s, y = (a if a.flags.writeable else a.copy() for a in (s, y))
    n_pos = torch.from_numpy(y.sum(axis=1))
    m = int(n_pos.max()) if rows else 0
    if m == 0:
        return np.full(rows, np.nan)
    ascending = torch.from_numpy(np.sort(s, axis=1))
    values = torch.from_numpy(s)
    # Each row's positive scores, ascending, padded with +inf (masked below).
    positives = torch.topk(torch.where(torch.from_numpy(y), values, torch.tensor(float("inf"))), m, dim=1,
                           largest=False, sorted=True).values.contiguous()
    at_least = n - torch.searchsorted(ascending, positives, right=False)  # n(≥ positive i)
    tp = n_pos[:, None] - torch.searchsorted(positives, positives, right=False)  # positives scored ≥ it
    real = torch.arange(m)[None, :] < n_pos[:, None]
    ratio = torch.where(real, tp.to(torch.float64) / at_least.clamp_min(1).to(torch.float64), 0.0)
    ap = ratio.sum(dim=1) / n_pos.clamp_min(1).to(torch.float64)
    ap[n_pos == 0] = float("nan")
    return ap.numpy()


@dataclass
class TopK:
    """Top-K figures; per-class arrays cover every label (NaN/0 where a class has no positive)."""

    k: int
    CP: float
    CR: float
    CF1: float
    OP: float
    OR: float
    OF1: float
    n_plus: int
    image_p: dict[str, float]
    image_r: dict[str, float]
    image_f1: dict[str, float]
    class_precision: np.ndarray = field(repr=False)
    class_recall: np.ndarray = field(repr=False)

    def summary(self) -> dict:
        return {"k": self.k, "C-P": self.CP, "C-R": self.CR, "C-F1": self.CF1, "O-P": self.OP, "O-R": self.OR,
                "O-F1": self.OF1, "N+": self.n_plus, "image_P": self.image_p, "image_R": self.image_r,
                "image_F1": self.image_f1}


def _stats(values: np.ndarray) -> dict[str, float]:
    if values.size == 0:
        return {"mean": float("nan"), "median": float("nan"), "std": float("nan")}
    return {"mean": float(values.mean()), "median": float(np.median(values)), "std": float(values.std())}


def top_k_metrics(scores: np.ndarray, truth: np.ndarray, k: int) -> TopK:
    scores, truth = check_inputs(scores, truth)
    _check_ks((k,), truth.shape[1])
    return _top_k_figures(top_k_indices(scores, k), truth, *_positive_counts(truth))


def _check_ks(ks, n_labels: int) -> None:
    for k in ks:
        if not 1 <= k <= n_labels:
            raise TagrankError(f"K = {k} is out of range for {n_labels} labels")


def _positive_counts(truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positives per class (L,) and per image (N,): counted once for every K."""
    return np.count_nonzero(truth, axis=0), np.count_nonzero(truth, axis=1)


def _top_k_figures(top: np.ndarray, truth: np.ndarray, per_class_truth: np.ndarray,
                   per_image_truth: np.ndarray) -> TopK:
    """The top-K figures from each image's K predicted columns ``top`` (N, K), the truth (N, L) and its
    positives per class and per image (:func:`_positive_counts`)."""
    n, n_labels = truth.shape
    k = top.shape[1]
    correct = np.take_along_axis(truth, top, axis=1)  # (N, K): which predictions are right
    n_pred = np.bincount(top.ravel(), minlength=n_labels).astype(np.float64)
    n_correct = np.bincount(top[correct], minlength=n_labels).astype(np.float64)
    n_truth = per_class_truth.astype(np.float64)
    present = n_truth > 0
    class_p = np.divide(n_correct, n_pred, out=np.zeros(n_labels), where=n_pred > 0)
    class_r = np.divide(n_correct, n_truth, out=np.full(n_labels, np.nan), where=present)
    cp = float(class_p[present].mean()) if present.any() else float("nan")
    cr = float(class_r[present].mean()) if present.any() else float("nan")
    op = float(n_correct.sum() / (n * k)) if n else float("nan")
    orr = float(n_correct.sum() / n_truth.sum()) if n_truth.sum() else float("nan")
    per_image_correct = correct.sum(axis=1)
    has = per_image_truth > 0
    ip = per_image_correct[has] / k
    ir = per_image_correct[has] / per_image_truth[has]
    return TopK(k, cp, cr, float(_f1(cp, cr)), op, orr, float(_f1(op, orr)),
                int((class_r[present] > 0).sum()), _stats(ip), _stats(ir), _stats(_f1(ip, ir)),
                class_p, class_r)


@dataclass
class Metrics:
    top_k: dict[int, TopK]
    mAP: float
    sample_mAP: float
    class_ap: np.ndarray = field(repr=False)
    n_positive: np.ndarray = field(repr=False, default=None)  # test images per class
    labels: list[str] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)  # classes with no positive: not in C-metrics / mAP
    n_images: int = 0

    def summary(self) -> dict:
        return {"n_images": self.n_images, "n_labels": len(self.labels), "mAP": self.mAP,
                "sample_mAP": self.sample_mAP, "excluded_classes": self.excluded,
                "top_k": {str(k): t.summary() for k, t in self.top_k.items()}}


def evaluate_scores(scores: np.ndarray, truth: np.ndarray, labels: list[str], ks=(3, 5),
                    class_scores: np.ndarray | None = None) -> Metrics:
    """All metrics. ``class_scores`` (same shape, comparable across images) feed the class-wise mAP;
    top-K and sample-wise figures always use the raw per-image ranking ``scores``."""
    scores, truth = check_inputs(scores, truth)
    if class_scores is None:
        class_scores = scores
    class_scores, _ = check_inputs(class_scores, truth)
    if len(labels) != truth.shape[1]:
        raise TagrankError(f"{len(labels)} label names for {truth.shape[1]} label columns")
    _check_ks(ks, truth.shape[1])
    class_ap = average_precision(class_scores, truth, axis=0)
    sample_ap = average_precision(scores, truth, axis=1)
    per_class, per_image = _positive_counts(truth)
    present = per_class > 0
    top = top_k_indices(scores, max(ks)) if ks else None  # every K's predictions are a prefix of the largest's
    return Metrics(
        top_k={k: _top_k_figures(top[:, :k], truth, per_class, per_image) for k in ks},
        mAP=float(np.nanmean(class_ap)) if present.any() else float("nan"),
        sample_mAP=float(np.nanmean(sample_ap)) if present.any() else float("nan"),
        class_ap=class_ap, n_positive=per_class, labels=list(labels),
        excluded=[label for label, p in zip(labels, present) if not p], n_images=truth.shape[0])


# -- open-world measures ---------------------------------------------------------------------------

def top_k_accuracy(scores: np.ndarray, truth: np.ndarray, ks=(1, 5)) -> dict[int, float]:
    """Single-label photos: the share whose true label is among their K best (ties: lower index first).

    ``scores`` (N, L), higher = more relevant; ``truth`` (N,) the column of each photo's label.
    """
    scores, truth = np.asarray(scores), np.asarray(truth)
    if scores.ndim != 2 or truth.shape != (len(scores),) or (len(truth) and not 0 <= truth.min() <= truth.max() < scores.shape[1]):
        raise TagrankError(f"top-k accuracy needs (N, L) scores and N label columns, got {scores.shape} and {truth.shape}")
    own = scores[np.arange(len(scores)), truth][:, None]
    columns = np.arange(scores.shape[1])[None, :]
    ahead = (scores > own) | ((scores == own) & (columns < truth[:, None]))  # the rank the tie rule gives
    rank = ahead.sum(axis=1)
    return {k: float((rank < k).mean()) if len(rank) else float("nan") for k in ks}


def hub_share(top_indices: np.ndarray, hubs: int = 10,
              unrelated: np.ndarray | None = None) -> tuple[float, list[tuple[int, int]]]:
    """The share of all top-K slots taken by the ``hubs`` most frequent tags, and those (tag, count).

    A tagger that knows its photos spreads its top-K over many tags; one that does not keeps
    proposing the same few (the 'hub' tags) whatever the photo. ``unrelated`` (the shape of
    ``top_indices``): whether each slot's tag has nothing to do with its photo; given, only those slots of
    the frequent tags count (a generic name such as 'animal' is frequent because it is right on many photos).
    """
    top_indices = np.asarray(top_indices)
    counts = np.bincount(top_indices.ravel())
    order = np.argsort(-counts, kind="stable")[:hubs]
    taken = np.isin(top_indices, order)
    if unrelated is not None:
        taken &= np.asarray(unrelated, bool)
    share = float(taken.sum() / max(1, top_indices.size))
    return share, [(int(i), int(counts[i])) for i in order if counts[i] > 0]
