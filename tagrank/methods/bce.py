"""BCE baseline: a sigmoid output per training label with binary cross-entropy (a multi-label CNN).
Optional class weighting counters label imbalance. Ranks its training labels only."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from tagrank.methods.base import HeadOptions, Method, register


@dataclass
class BceOptions(HeadOptions):
    class_weighting: bool = False  # weight each label's positives by (negatives / positives), capped
    max_positive_weight: float = 50.0


@register
class Bce(Method):
    name = "bce"
    Options = BceOptions
    zero_shot = False
    score_name = "probability"
    calibration = "none (sigmoid probabilities are comparable across images)"

    def __init__(self, options: BceOptions, feature_dim: int, word_dim: int, n_labels: int):
        super().__init__(options, feature_dim, word_dim, n_labels)
        self.register_buffer("positive_weight", torch.ones(n_labels))

    def head_outputs(self) -> int:
        return self.n_labels

    def prepare(self, targets: torch.Tensor, label_vectors: torch.Tensor | None = None) -> None:
        super().prepare(targets, label_vectors)
        weight = self.label_weight.clone()
        if self.options.class_weighting:
            positives = targets.float().sum(dim=0).clamp_min(1)
            weight *= ((targets.shape[0] - positives) / positives).clamp(1.0, self.options.max_positive_weight)
        self.positive_weight.copy_(weight)

    def scores(self, features: torch.Tensor, label_vectors: torch.Tensor | None = None) -> torch.Tensor:
        return torch.sigmoid(self.head(features))

    def loss(self, features, positives, label_vectors, generator, known=None):
        return F.binary_cross_entropy_with_logits(self.head(features), positives.float(),
                                                  weight=None if known is None else known.float(),
                                                  pos_weight=self.positive_weight)
