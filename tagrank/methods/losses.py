"""The losses: the paper's hinge rank loss and the baselines' WARP and pairwise ranking losses."""

from __future__ import annotations

import torch
import torch.nn.functional as F

PAIRINGS = ("mean", "each")  # how the hinge rank loss pairs an image's positives with its negatives


def hinge_rank_loss(distances: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor,
                    margin: float, weights: torch.Tensor | None = None, pairing: str = "mean") -> torch.Tensor:
    """The paper's L = Σ_j max(0, m + (1/|P|) Σ_i ‖A p_i‖ − ‖A n_j‖), averaged over images with a positive.

    ``distances`` (B, V) are ``‖A w‖₂`` for every label, ``positives`` (B, V) bool, ``negatives`` (B, n)
    sampled label indices. ``pairing="mean"`` uses the *average* positive distance, as in the paper;
    ``"each"`` puts every positive against every negative, (1/|P|) Σ_i Σ_j max(0, m + ‖A p_i‖ − ‖A n_j‖).
    ``weights`` (V,) weight each label as a positive (a weighted average for "mean"); None: all 1.
    """
    counts = positives.sum(dim=1)
    w = positives * (weights[None, :] if weights is not None else 1.0)
    negative = distances.gather(1, negatives)
    valid_negative = ~positives.gather(1, negatives)  # masks padding draws for fully-tagged images
    if pairing == "mean":
        mean_positive = (distances * w).sum(dim=1) / w.sum(dim=1).clamp_min(1e-12)
        per_image = (F.relu(margin + mean_positive[:, None] - negative) * valid_negative).sum(dim=1)
    elif pairing == "each":
        hinge = F.relu(margin + distances[:, :, None] - negative[:, None, :]) * valid_negative[:, None, :]
        per_image = (hinge.sum(dim=2) * w).sum(dim=1) / counts.clamp_min(1)
    else:
        raise ValueError(f"unknown pairing {pairing!r} (mean, each)")
    return _mean_over_images_with_positive(per_image, counts)


def softmax_rank_loss(distances: torch.Tensor, positives: torch.Tensor, candidates: torch.Tensor,
                      temperature: float = 1.0, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Each positive against *every* negative at once: log(1 + Σ_n exp((d_p − d_n)/T)), averaged over an
    image's positives, then over images with a positive.

    ``distances`` (B, V) are ``‖A w‖₂``; ``candidates`` (B, V) bool marks the labels that may serve as
    negatives (every label the image's dataset annotates); ``weights`` (V,) weight each label as a positive.
    Unlike the hinge on sampled negatives it sees the whole label set each step, as BCE does.
    """
    logits = -distances / temperature
    negative = candidates & ~positives
    # log Σ_n e^{l_n} over the image's negatives (−inf, so a loss of 0, for an image with none)
    spread = logits.masked_fill(~negative, -torch.inf).logsumexp(dim=1, keepdim=True)  # (B, 1)
    per_positive = F.softplus(spread - logits)  # −log(e^{l_p} / (e^{l_p} + Σ_n e^{l_n}))
    w = positives * (weights[None, :] if weights is not None else 1.0)
    counts = positives.sum(dim=1)
    per_image = (per_positive * w).sum(dim=1) / counts.clamp_min(1)
    return _mean_over_images_with_positive(per_image, counts)


def _mean_over_images_with_positive(per_image: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """The ranking losses' average of ``per_image`` (B,) over the images with a positive (``counts`` (B,) > 0);
    0, still on the graph, for a batch without one."""
    has_positive = counts > 0
    return per_image[has_positive].mean() if has_positive.any() else per_image.sum() * 0


def pairwise_ranking_loss(scores: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor,
                          weights: torch.Tensor | None = None) -> torch.Tensor:
    """RankNet loss log(1 + exp(s_n − s_p)) over every (positive, sampled negative) pair (Fast0Tag).

    ``weights`` (V,) weight each label's pairs as the positive; None: all 1.
    """
    negative = scores.gather(1, negatives)  # (B, n)
    valid = positives[:, :, None] & ~positives.gather(1, negatives)[:, None, :]  # (B, V, n)
    diff = negative[:, None, :] - scores[:, :, None]
    terms = F.softplus(diff) * valid
    if weights is not None:
        terms = terms * weights[None, :, None]
    pairs = valid.sum()
    return terms.sum() / pairs.clamp_min(1)


def warp_loss(scores: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor, margin: float,
              weights: torch.Tensor | None = None) -> torch.Tensor:
    """Weighted approximate-rank pairwise loss (Weston et al. 2011) with a vectorised sampling step.

    For each positive p, ``negatives`` (B, n) are drawn in order; the first one violating the margin
    (s_n > s_p − margin) at draw N estimates p's rank as ⌊(Y−1)/N⌋ with Y the number of negatives, and
    the hinge is weighted by L(r) = Σ_{i≤r} 1/i. Positives with no violating draw cost nothing.
    ``weights`` (V,) weight each label as a positive; None: all 1.
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
    terms = harmonic * hinge * any_violation
    if weights is not None:
        terms = terms * weights[None, :]
    terms = terms.sum(dim=1)
    counts = positives.sum(dim=1)
    return (terms / counts.clamp_min(1)).mean()
