"""Confidence users can threshold: the chance that a tag is right, comparable across photos and tags.

Raw scores (‖Aw‖, cosines, u·w) change scale from photo to photo, so no fixed cut-off means anything.
Each photo's relevance is standardised against a fixed *reference* label set (the model's training
labels): z = (relevance − mean) / std over the reference, so a tag's z does not depend on what else a
user ranks with it. A monotone (isotonic) fit on validation photos with known labels turns z into the
fraction of tags at that z that were right: a piecewise-linear curve through at most a few hundred knots.
(A logistic σ(slope·z + intercept) was fitted before; it cannot follow the mixture of tag kinds a model
trained on several datasets has: the default model's 0.7–0.9 confidences were right 54–56 % of the time.
Models fitted so still load and use it.) The fit and its expected calibration error (ECE), measured by
cross-fitting on halves of the photos, are recorded in model.json.

Hubs. Some tags come out relevant for nearly every photo ('people', 'tables' and 'plants' for a model that
learned Corel5k's words; 'barn spider' for ConSE): the confidence order put them in a seventh of all top-5
slots of everyday validation photos. A trained model therefore keeps the features of a few hundred of its
training photos (its *reference photos*), and a tag's standardised relevance is lowered by λ times its
*usual best*: its mean z over the share of the reference photos where it is highest (the local scaling of
Conneau et al.'s CSLS, which cures hubs in cross-lingual word retrieval the same way). The curves are fitted
on these lowered z, so the confidence stays calibrated.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from tagrank.errors import TagrankError


@dataclass
class Calibration:
    reference: list[str]  # the labels whose relevance standardises a photo's scores
    knots: list[list[float]] = field(default_factory=list)  # [z values (increasing), confidences (nondecreasing)]
    # one curve per tag kind (the method's Method.tag_kinds: say, a tag that names an ImageNet class or not),
    # each like `knots`; empty: `knots` for every tag
    kind_knots: list[list[list[float]]] = field(default_factory=list)
    fitted_on: str = ""  # what the fit saw (photos, labels, pairs)
    ece: float | None = None  # expected calibration error, cross-fitted (10 equal-width bins)
    reliability: list[dict] = field(default_factory=list)  # per bin: mean confidence, accuracy, count
    hub_weight: float = 0.0  # λ: z − λ·(the tag's usual best z over the reference photos), see hub_prior
    hub_share: float = 0.05  # the share of the reference photos its usual best is taken over
    kind_hub_weights: list[float] = field(default_factory=list)  # λ per tag kind; empty: hub_weight for every tag
    slope: float | None = None  # the logistic of models calibrated before the isotonic fit
    intercept: float | None = None

    def confidence(self, z: torch.Tensor, kinds: torch.Tensor | np.ndarray | None = None) -> torch.Tensor:
        """Confidence of standardised relevance ``z``; ``kinds`` (z's shape): each tag's kind, when fitted per kind."""
        if not self.knots:
            return torch.sigmoid(self.slope * z + self.intercept)

        def curve(knots: list[list[float]]) -> torch.Tensor:
            return interpolate(z, *(torch.tensor(k, dtype=z.dtype, device=z.device) for k in knots))

        if not self.kind_knots or kinds is None:
            return curve(self.knots)
        out, kinds = curve(self.knots), torch.as_tensor(kinds, device=z.device)  # a kind without a curve: pooled
        for kind, knots in enumerate(self.kind_knots):
            out = torch.where(kinds == kind, curve(knots), out)
        return out

    @property
    def lowers_hubs(self) -> bool:
        """Whether some tags' z is lowered by their usual best (which needs the model's reference photos)."""
        return bool(self.hub_weight or any(self.kind_hub_weights))

    def hub_weights(self, kinds: torch.Tensor | np.ndarray | None, like: torch.Tensor) -> torch.Tensor | float:
        """λ for tags of these ``kinds`` (any shape; None: one kind), as a tensor shaped like ``kinds``, or a
        number where every kind has the same."""
        if not self.kind_hub_weights or kinds is None:
            return self.hub_weight
        weights = torch.tensor(self.kind_hub_weights + [self.hub_weight], dtype=like.dtype, device=like.device)
        kinds = torch.as_tensor(kinds, device=like.device)
        return weights[kinds.clamp(0, len(self.kind_hub_weights))]

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, values: dict | None, where: str = "model.json") -> "Calibration | None":
        """The calibration a model describes; an edited or foreign block is refused naming its field."""
        if not values:
            return None
        from dataclasses import fields

        if not isinstance(values, dict):
            raise TagrankError(f"{where}: 'confidence' is a {type(values).__name__}, not an object")
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise TagrankError(f"{where}: unknown field(s) {', '.join(map(repr, unknown))} in 'confidence'")
        if "reference" not in values:
            raise TagrankError(f"{where}: 'confidence' lacks its field 'reference'")
        return cls(**values)


def interpolate(x: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """The piecewise-linear curve through (xs, ys) at x, flat beyond its ends (numpy's interp, in torch)."""
    if len(xs) == 1:
        return ys.expand_as(x).clone()
    right = torch.searchsorted(xs, x.contiguous()).clamp(1, len(xs) - 1)
    x0, x1, y0, y1 = xs[right - 1], xs[right], ys[right - 1], ys[right]
    t = ((x - x0) / (x1 - x0).clamp_min(1e-12)).clamp(0, 1)
    return y0 + t * (y1 - y0)


def reference_scale(relevance: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-photo mean and std (B, 1) of relevance over the reference labels."""
    return relevance.mean(dim=1, keepdim=True), relevance.std(dim=1, unbiased=False, keepdim=True).clamp_min(1e-12)


def hub_prior(z: torch.Tensor, share: float) -> torch.Tensor:
    """(V,) each tag's usual best: the mean of its highest ``share`` of the standardised relevance ``z`` (N, V)
    over the N reference photos."""
    top = max(1, round(share * z.shape[0]))
    return z.topk(top, dim=0).values.mean(dim=0)


KIND_RELEVANT = 200
"""The fewest relevant validation pairs a tag kind needs for a curve of its own (20 bins of RELEVANT_PER_BIN); the
default model's generic names among its training labels are 21 Corel5k words with 57 relevant pairs, too few
to say how often 'cat' at its best is right, so they read the pooled curve."""
RELEVANT_PER_BIN = 10
"""The fewest relevant pairs between two quantiles of the relevant pairs' z: with fewer, the top of a curve
fitted on a rare tag kind rests on a handful of pairs (one right of two reads 0.5)."""


def fit_isotonic(z: np.ndarray, y: np.ndarray, bins: int = 200) -> list[list[float]]:
    """Knots [z, P(y = 1 | z)] of the nondecreasing fit of ``y`` on ``z``.

    The pairs are first pooled into bins, half of them quantiles of all z and half quantiles of the
    relevant pairs' z (relevant pairs are rare and sit at the top, where thresholds are set), each bin
    holding :data:`RELEVANT_PER_BIN` relevant pairs or a quantile of all pairs; then pool adjacent
    violators makes the bins' rates nondecreasing. Each knot is a pooled block's mean z and rate.
    """
    z, y = np.asarray(z, np.float64), np.asarray(y, np.float64)
    if not _mixed(y):
        raise TagrankError("calibration needs both relevant and irrelevant (photo, tag) pairs")
    relevant = z[y > 0]
    steps = min(bins // 2, max(1, len(relevant) // RELEVANT_PER_BIN))
    edges = np.unique(np.concatenate([np.quantile(z, np.linspace(0, 1, bins // 2 + 1)),
                                      np.quantile(relevant, np.linspace(0, 1, steps + 1))]))
    which = np.clip(np.searchsorted(edges, z, side="right") - 1, 0, max(len(edges) - 2, 0))
    # The two sets of edges interleave, leaving slivers of a few pairs between them: from the top down, a bin
    # joins the one below until it holds RELEVANT_PER_BIN relevant pairs or a quantile of all pairs.
    count = np.bincount(which, minlength=len(edges)).astype(np.float64)
    right = np.bincount(which, weights=y, minlength=len(edges))
    total = np.bincount(which, weights=z, minlength=len(edges))
    enough_pairs = len(z) / (bins // 2)
    merged: list[list[float]] = []  # [pairs, relevant, sum of z], top first
    open_bin = [0.0, 0.0, 0.0]
    for b in range(len(count) - 1, -1, -1):
        open_bin = [open_bin[0] + count[b], open_bin[1] + right[b], open_bin[2] + total[b]]
        if open_bin[1] >= RELEVANT_PER_BIN or open_bin[0] >= enough_pairs:
            merged.append(open_bin)
            open_bin = [0.0, 0.0, 0.0]
    if open_bin[0]:
        if merged:
            merged[-1] = [a + b for a, b in zip(merged[-1], open_bin)]
        else:
            merged.append(open_bin)
    count, right, total = (np.array(column[::-1]) for column in zip(*merged))
    rate, centre = right / count, total / count
    blocks: list[list[float]] = []  # [rate, weight, weighted z]
    for r, w, c in zip(rate, count, centre):
        blocks.append([r, w, c * w])
        while len(blocks) > 1 and blocks[-2][0] >= blocks[-1][0]:
            r2, w2, cw2 = blocks.pop()
            r1, w1, cw1 = blocks[-1]
            blocks[-1] = [(r1 * w1 + r2 * w2) / (w1 + w2), w1 + w2, cw1 + cw2]
    return [[cw / w for _, w, cw in blocks], [r for r, _, _ in blocks]]


def reliability(confidence: np.ndarray, y: np.ndarray, bins: int = 10) -> tuple[float, list[dict]]:
    """Expected calibration error and the reliability diagram's bins (equal-width over [0, 1])."""
    confidence, y = np.asarray(confidence, np.float64), np.asarray(y, np.float64)
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            mean, accuracy = float(confidence[inside].mean()), float(y[inside].mean())
            ece += inside.mean() * abs(mean - accuracy)
            table.append({"bin": f"{b / bins:.1f}-{(b + 1) / bins:.1f}", "confidence": mean, "accuracy": accuracy,
                          "pairs": int(inside.sum())})
    return float(ece), table


def calibrate(relevance: np.ndarray, truth: np.ndarray, reference: list[str], known: np.ndarray | None = None,
              what: str = "validation photos", kinds: np.ndarray | None = None,
              reference_relevance: np.ndarray | None = None, hub_weight: float = 0.0,
              hub_share: float = 0.05, kind_hub_weights: list[float] | None = None) -> Calibration:
    """Fit the calibration on ``relevance`` (N, L) of the reference labels with ``truth`` (N, L).

    ``known`` (N, L) leaves out the pairs whose truth is unknown (a mixture's other datasets' labels).
    ``kinds`` (L,): each reference label's kind (:meth:`Method.tag_kinds`), one curve fitted per kind.
    ``reference_relevance`` (M, L): the labels' relevance for the reference photos, whose :func:`hub_prior`
    times ``hub_weight`` (``kind_hub_weights``: λ for each kind) is taken off each label's z before the fit.
    The reliability recorded is cross-fitted: each half of the photos (alternate rows) scored by the
    fit on the other half, so it says how the fit does on photos it has not seen.
    """
    rel = torch.as_tensor(relevance, dtype=torch.float64)
    mean, std = reference_scale(rel)
    z = (rel - mean) / std
    hubs = Calibration(reference, hub_weight=hub_weight, hub_share=hub_share,
                       kind_hub_weights=list(kind_hub_weights or []))
    if hubs.lowers_hubs:
        from tagrank.methods.base import standardise

        usual = hub_prior(standardise(torch.as_tensor(reference_relevance, dtype=torch.float64)), hub_share)
        z = z - hubs.hub_weights(None if kinds is None else torch.as_tensor(np.asarray(kinds, np.int64)), z) * usual
    z = z.numpy()
    truth = np.asarray(truth)
    mask = np.ones(truth.shape, bool) if known is None else np.asarray(known, bool)
    # a writable copy: torch reads it
    kind = None if kinds is None else np.broadcast_to(np.asarray(kinds, np.int64), z.shape).copy()
    calibration = _fit(z, truth, mask, kind, reference)
    calibration.hub_weight, calibration.hub_share = hub_weight, hub_share
    calibration.kind_hub_weights = hubs.kind_hub_weights

    def part(rows: np.ndarray) -> np.ndarray | None:
        return None if kind is None else kind[rows]

    halves = np.arange(len(z)) % 2 == 0
    if all(_mixed(truth[h][mask[h]]) for h in (halves, ~halves)):
        scored, right = [], []
        for fit_on in (halves, ~halves):
            rows = ~fit_on
            half = _fit(z[fit_on], truth[fit_on], mask[fit_on], part(fit_on), reference)
            sure = half.confidence(torch.from_numpy(z[rows]), part(rows))
            scored.append(sure.numpy()[mask[rows]])
            right.append(truth[rows][mask[rows]])
        how = "cross-fitted on halves of the photos"
        calibration.ece, calibration.reliability = reliability(np.concatenate(scored), np.concatenate(right))
    else:  # too few photos to halve: the fit's own pairs
        how = "on the fitted pairs"
        sure = calibration.confidence(torch.from_numpy(z), kind)
        calibration.ece, calibration.reliability = reliability(sure.numpy()[mask], truth[mask])
    per_kind = f", a curve for each of {len(calibration.kind_knots)} tag kinds" if calibration.kind_knots else ""
    calibration.fitted_on = (f"{len(rel)} {what}, {len(reference)} labels, {int(mask.sum())} (photo, label) pairs"
                             f"{per_kind}; reliability {how}")
    return calibration


def _mixed(truth: np.ndarray) -> bool:
    """Whether pairs with this truth have both relevant and irrelevant ones (what an isotonic fit needs)."""
    return truth.size > 0 and truth.min() != truth.max()


def _fit(z: np.ndarray, truth: np.ndarray, mask: np.ndarray, kind: np.ndarray | None, reference: list[str]) -> Calibration:
    """The pooled curve, and one per kind where that kind has :data:`KIND_RELEVANT` relevant pairs (else the
    pooled one)."""
    pooled = fit_isotonic(z[mask], truth[mask])
    curves = []
    if kind is not None:
        for k in range(int(kind.max()) + 1):
            inside = mask & (kind == k)
            own = _mixed(truth[inside]) and int(truth[inside].sum()) >= KIND_RELEVANT
            curves.append(fit_isotonic(z[inside], truth[inside]) if own else pooled)
    return Calibration(list(reference), pooled, curves)
