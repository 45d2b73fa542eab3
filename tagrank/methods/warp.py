"""WARP baseline (Weston et al. 2011; Gong et al. 2013 on NUS-WIDE): one score per training label,
trained with the weighted approximate-rank pairwise loss. Ranks its training labels only."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tagrank.methods.losses import warp_loss
from tagrank.methods.base import HeadOptions, Method, register, sample_negatives


@dataclass
class WarpOptions(HeadOptions):
    margin: float = 1.0
    max_trials: int = 100  # negatives drawn per image to find a margin violator (rank estimate)


@register
class Warp(Method):
    name = "warp"
    Options = WarpOptions
    zero_shot = False

    def head_outputs(self) -> int:
        return self.n_labels

    def scores(self, features: torch.Tensor, label_vectors: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(features)

    def loss(self, features, positives, label_vectors, generator, known=None):
        trials = min(self.options.max_trials, self.n_labels)
        negatives = sample_negatives(positives, trials, generator, known)
        return warp_loss(self.head(features), positives, negatives, self.options.margin, self.label_weight)
