"""The image-dependent transformation model (the paper, section 3).

For each image the head emits a k×d matrix A; a tag w is relevant when ‖A w‖₂ is small. Trained with
the hinge rank loss against ``negatives`` labels sampled per image. Ranking uses the factor R of
A = QR (R is min(k, d)×d), since ‖A w‖ = ‖R w‖: the cost per label is d·min(k, d), not d·k.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tagrank.errors import TagrankError
from tagrank.losses import PAIRINGS, hinge_rank_loss, warp_loss
from tagrank.methods.base import HeadOptions, Method, mlp, register, sample_negatives


LOSSES = ("hinge", "warp")


@dataclass
class TransformOptions(HeadOptions):
    k: int = 100  # rows of A: the dimension of the space tags are mapped into (paper: 100)
    margin: float = 1.0  # hinge margin m
    negatives: int = 40  # labels sampled per image as negatives (paper: 40)
    normalize_vectors: bool = False  # rank unit-length word vectors instead of raw ones
    pairing: str = "mean"  # "mean": hinge on the average positive distance (paper); "each": every positive
    # "hinge": the paper's hinge rank loss; "warp": WARP's rank-weighted hinge on −‖A w‖ (negatives
    # are then the draws that estimate each positive's rank)
    loss: str = "hinge"
    word_hidden: int = 0  # width of a learned residual layer on the word vectors (0: none, as in the paper)
    affine: bool = False  # rank ‖A [w; 1]‖: a learned offset per image, so the origin word need not be best


@register
class Transform(Method):
    name = "transform"
    Options = TransformOptions
    lower_is_better = True
    score_name = "distance"
    reduce = "norm"

    def __init__(self, options: TransformOptions, feature_dim: int, word_dim: int, n_labels: int):
        if options.loss not in LOSSES:
            raise TagrankError(f"config field method.loss: {options.loss!r} is not one of {', '.join(LOSSES)}")
        if options.pairing not in PAIRINGS:
            raise TagrankError(f"config field method.pairing: {options.pairing!r} is not one of {', '.join(PAIRINGS)}")
        super().__init__(options, feature_dim, word_dim, n_labels)
        if options.word_hidden:
            # w + g(w), shared by every word (seen or not); g starts at zero so training starts from GloVe.
            self.word_map = mlp(word_dim, [options.word_hidden], word_dim, 0.0)
            torch.nn.init.zeros_(self.word_map[-1].weight)
            torch.nn.init.zeros_(self.word_map[-1].bias)

    @property
    def space_dim(self) -> int:
        """Width of the vectors A acts on: d, or d + 1 with the affine coordinate."""
        return self.word_dim + int(self.options.affine)

    def head_outputs(self) -> int:
        return self.options.k * self.space_dim  # A, read as k×d

    def matrices(self, features: torch.Tensor) -> torch.Tensor:
        """A for each image: (B, k, d)."""
        return self.head(features).view(-1, self.options.k, self.space_dim)

    def label_space(self, label_vectors: torch.Tensor) -> torch.Tensor:
        if self.options.normalize_vectors:
            label_vectors = label_vectors / label_vectors.norm(dim=1, keepdim=True).clamp_min(1e-12)
        if self.options.word_hidden:
            label_vectors = label_vectors + self.word_map(label_vectors)
        if self.options.affine:
            label_vectors = torch.cat([label_vectors, label_vectors.new_ones(len(label_vectors), 1)], dim=1)
        return label_vectors

    def factors(self, features: torch.Tensor) -> torch.Tensor:
        A = self.matrices(features)
        if self.options.k <= self.space_dim:
            return A
        return torch.linalg.qr(A, mode="r").R  # (B, d, d), ‖A w‖ = ‖R w‖

    def loss(self, features, positives, label_vectors, generator):
        distances = torch.linalg.vector_norm(
            torch.einsum("bkd,vd->bvk", self.matrices(features), self.label_space(label_vectors)), dim=2)
        negatives = sample_negatives(positives, self.options.negatives, generator)
        if self.options.loss == "warp":
            return warp_loss(-distances, positives, negatives, self.options.margin, self.label_weight)
        return hinge_rank_loss(distances, positives, negatives, self.options.margin, self.label_weight,
                               self.options.pairing)
