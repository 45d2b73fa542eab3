"""Confidence users can threshold: the chance that a tag is right, comparable across photos and tags.

Raw scores (‖Aw‖, cosines, u·w) change scale from photo to photo, so no fixed cut-off means anything.
Each photo's relevance is standardised against a fixed *reference* label set (the model's training
labels): z = (relevance − mean) / std over the reference, so a tag's z does not depend on what else a
user ranks with it. A logistic fit, confidence = σ(slope·z + intercept), fitted on validation photos with
known labels, turns z into the fraction of tags at that z that were right. The fit and its expected
calibration error (ECE) are recorded in model.json.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from tagrank.errors import TagrankError


@dataclass
class Calibration:
    slope: float
    intercept: float
    reference: list[str]  # the labels whose relevance standardises a photo's scores
    fitted_on: str = ""  # what the fit saw (photos, labels, pairs)
    ece: float | None = None  # expected calibration error on those pairs (10 equal-width bins)
    reliability: list[dict] = field(default_factory=list)  # per bin: mean confidence, accuracy, count

    def confidence(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.slope * z + self.intercept)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict | None) -> "Calibration | None":
        return cls(**values) if values else None


def reference_scale(relevance: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-photo mean and std (B, 1) of relevance over the reference labels."""
    return relevance.mean(dim=1, keepdim=True), relevance.std(dim=1, unbiased=False, keepdim=True).clamp_min(1e-12)


def fit_logistic(z: np.ndarray, y: np.ndarray, iterations: int = 100) -> tuple[float, float]:
    """Maximum-likelihood (slope, intercept) of P(y = 1 | z) = σ(slope·z + intercept), by Newton's method."""
    z, y = np.asarray(z, np.float64), np.asarray(y, np.float64)
    if len(z) == 0 or y.min() == y.max():
        raise TagrankError("calibration needs both relevant and irrelevant (photo, tag) pairs")
    X = np.stack([z, np.ones_like(z)], axis=1)
    w = np.zeros(2)
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-(X @ w)))
        gradient = X.T @ (y - p)
        hessian = X.T @ (X * (p * (1 - p))[:, None]) + 1e-9 * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        w += step
        if np.abs(step).max() < 1e-10:
            break
    return float(w[0]), float(w[1])


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
              what: str = "validation photos") -> Calibration:
    """Fit the calibration on ``relevance`` (N, L) of the reference labels with ``truth`` (N, L).

    ``known`` (N, L) leaves out the pairs whose truth is unknown (a mixture's other datasets' labels).
    """
    rel = torch.as_tensor(relevance, dtype=torch.float64)
    mean, std = reference_scale(rel)
    z = ((rel - mean) / std).numpy()
    mask = np.ones(truth.shape, bool) if known is None else known
    slope, intercept = fit_logistic(z[mask], truth[mask])
    calibration = Calibration(slope, intercept, list(reference))
    ece, table = reliability(calibration.confidence(torch.from_numpy(z[mask])).numpy(), truth[mask])
    calibration.ece, calibration.reliability = ece, table
    calibration.fitted_on = f"{len(rel)} {what}, {len(reference)} labels, {int(mask.sum())} (photo, label) pairs"
    return calibration
