"""The image-dependent transformation model (the paper, section 3).

For each image the head emits a k×d matrix A; a tag w is relevant when ‖A w‖₂ is small. Trained with
the hinge rank loss against ``negatives`` labels sampled per image. Ranking uses the factor R of
A = QR (R is min(k, d)×d), since ‖A w‖ = ‖R w‖: the cost per label is d·min(k, d), not d·k.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tagrank.errors import TagrankError
from tagrank.losses import PAIRINGS, hinge_rank_loss
from tagrank.methods.base import HeadOptions, Method, register, sample_negatives


@dataclass
class TransformOptions(HeadOptions):
    k: int = 100  # rows of A: the dimension of the space tags are mapped into (paper: 100)
    margin: float = 1.0  # hinge margin m
    negatives: int = 40  # labels sampled per image as negatives (paper: 40)
    normalize_vectors: bool = False  # rank unit-length word vectors instead of raw ones
    pairing: str = "mean"  # "mean": hinge on the average positive distance (paper); "each": every positive


@register
class Transform(Method):
    name = "transform"
    Options = TransformOptions
    lower_is_better = True
    score_name = "distance"
    reduce = "norm"

    def __init__(self, options: TransformOptions, feature_dim: int, word_dim: int, n_labels: int):
        if options.pairing not in PAIRINGS:
            raise TagrankError(f"config field method.pairing: {options.pairing!r} is not one of {', '.join(PAIRINGS)}")
        super().__init__(options, feature_dim, word_dim, n_labels)

    def head_outputs(self) -> int:
        return self.options.k * self.word_dim  # A, read as k×d

    def matrices(self, features: torch.Tensor) -> torch.Tensor:
        """A for each image: (B, k, d)."""
        return self.head(features).view(-1, self.options.k, self.word_dim)

    def label_space(self, label_vectors: torch.Tensor) -> torch.Tensor:
        if self.options.normalize_vectors:
            return label_vectors / label_vectors.norm(dim=1, keepdim=True).clamp_min(1e-12)
        return label_vectors

    def factors(self, features: torch.Tensor) -> torch.Tensor:
        A = self.matrices(features)
        if self.options.k <= self.word_dim:
            return A
        return torch.linalg.qr(A, mode="r").R  # (B, d, d), ‖A w‖ = ‖R w‖

    def loss(self, features, positives, label_vectors, generator):
        distances = torch.linalg.vector_norm(
            torch.einsum("bkd,vd->bvk", self.matrices(features), self.label_space(label_vectors)), dim=2)
        negatives = sample_negatives(positives, self.options.negatives, generator)
        return hinge_rank_loss(distances, positives, negatives, self.options.margin, self.label_weight,
                               self.options.pairing)
