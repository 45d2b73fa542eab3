"""The losses: the paper's hinge rank loss and the baselines' WARP and pairwise ranking losses."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def hinge_rank_loss(distances: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor,
                    margin: float) -> torch.Tensor:
    """L = Σ_j max(0, m + (1/|P|) Σ_i ‖A p_i‖ − ‖A n_j‖), averaged over images with a positive.

    ``distances`` (B, V) are ‖A w‖₂ for every label, ``positives`` (B, V) bool, ``negatives`` (B, n)
    sampled label indices. The *average* positive distance is used, as in the paper, not the closest.
    """
    counts = positives.sum(dim=1)
    mean_positive = (distances * positives).sum(dim=1) / counts.clamp_min(1)
    negative = distances.gather(1, negatives)
    valid_negative = ~positives.gather(1, negatives)  # masks padding draws for fully-tagged images
    per_image = (F.relu(margin + mean_positive[:, None] - negative) * valid_negative).sum(dim=1)
    has_positive = counts > 0
    return per_image[has_positive].mean() if has_positive.any() else distances.sum() * 0


def pairwise_ranking_loss(scores: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
    """RankNet loss log(1 + exp(s_n − s_p)) over every (positive, sampled negative) pair (Fast0Tag)."""
    negative = scores.gather(1, negatives)  # (B, n)
    valid = positives[:, :, None] & ~positives.gather(1, negatives)[:, None, :]  # (B, V, n)
    diff = negative[:, None, :] - scores[:, :, None]
    terms = F.softplus(diff) * valid
    pairs = valid.sum()
    return terms.sum() / pairs.clamp_min(1)


def warp_loss(scores: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor, margin: float) -> torch.Tensor:
    """Weighted approximate-rank pairwise loss (Weston et al. 2011) with a vectorised sampling step.

    For each positive p, ``negatives`` (B, n) are drawn in order; the first one violating the margin
    (s_n > s_p − margin) at draw N estimates p's rank as ⌊(Y−1)/N⌋ with Y the number of negatives, and
    the hinge is weighted by L(r) = Σ_{i≤r} 1/i. Positives with no violating draw cost nothing.
    """
    B, V = scores.shape
    negative = scores.gather(1, negatives)  # (B, n)
    valid = ~positives.gather(1, negatives)
    violation = (margin + negative[:, None, :] - scores[:, :, None] > 0) & valid[:, None, :] & positives[:, :, None]
    any_violation = violation.any(dim=2)  # (B, V)
    first = violation.float().argmax(dim=2)  # index of the first violating draw
    trials = (first + 1).float()
    n_negative = (V - positives.sum(dim=1, keepdim=True)).float().clamp_min(1)
    rank = torch.floor((n_negative - 1).clamp_min(0) / trials) + 1
    harmonic = torch.special.digamma(rank + 1) + 0.5772156649015329  # Σ_{i≤r} 1/i
    hinge = margin + negative.gather(1, first) - scores  # (B, V): the first violator against each positive
    terms = (harmonic * hinge * any_violation).sum(dim=1)
    counts = positives.sum(dim=1)
    return (terms / counts.clamp_min(1)).mean()
