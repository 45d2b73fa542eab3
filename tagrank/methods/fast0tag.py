"""Fast0Tag-style linear direction (Zhang et al., CVPR 2016): the image emits one d-vector u and tags
are ranked by u·w, trained with a pairwise ranking loss. The closest zero-shot relative of the
transformation model: it shows what a full k×d transformation adds over a single direction."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tagrank.methods.losses import pairwise_ranking_loss
from tagrank.methods.base import HeadOptions, Method, register, sample_negatives


@dataclass
class Fast0TagOptions(HeadOptions):
    negatives: int = 40  # labels sampled per image as negatives, as for the transformation model


@register
class Fast0Tag(Method):
    name = "fast0tag"
    Options = Fast0TagOptions
    reduce = "dot"

    def head_outputs(self) -> int:
        return self.word_dim  # the direction u

    def factors(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)[:, None, :]

    def loss(self, features, positives, label_vectors, generator, known=None):
        scores = self.scores(features, label_vectors)
        negatives = sample_negatives(positives, self.options.negatives, generator, known)
        return pairwise_ranking_loss(scores, positives, negatives, self.label_weight)
