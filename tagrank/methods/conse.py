"""ConSE (Norouzi et al., ICLR 2014): training-free zero-shot tagging from ImageNet probabilities.

The backbone's ImageNet-1k classifier gives class probabilities; the vectors of the ``top`` most
probable class names, weighted by probability, combine into one direction v, and tags are ranked by
cosine to v. It needs no trained model, so it is the comparison point for every zero-shot claim; the
transformation model can carry the same knowledge as a fixed block of A (``backbone_block``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tagrank.methods.base import Method, register


@dataclass
class ConseOptions:
    top: int = 10  # ImageNet classes combined per image (the ConSE paper's T)


def imagenet_class_vectors(encoder) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors of the 1,000 ImageNet class names under ``encoder``, (1000, d), and which it knows."""
    from tagrank.images.backbone import imagenet_class_names

    embedded = encoder.embed(imagenet_class_names())
    known = np.array([e.in_vocab for e in embedded.entries])
    vectors = np.zeros((len(known), encoder.dim), np.float32)
    vectors[known] = embedded.matrix / np.linalg.norm(embedded.matrix, axis=1, keepdims=True).clip(1e-12)
    return vectors, known


class ImagenetKnowledge(torch.nn.Module):
    """The backbone's frozen ImageNet classifier and class-name vectors: pooled features -> ConSE's v.

    Saved with a model that uses it, so the model is self-contained (about 5 MB).
    """

    def __init__(self, feature_dim: int, word_dim: int, top: int):
        super().__init__()
        self.top = top
        self.classifier = torch.nn.Linear(feature_dim, 1000).requires_grad_(False)
        self.register_buffer("class_vectors", torch.zeros(1000, word_dim))
        self.register_buffer("class_known", torch.zeros(1000, dtype=torch.bool))

    def fill(self, backbone, encoder) -> None:
        vectors, known = imagenet_class_vectors(encoder)
        self.classifier.load_state_dict(backbone.model.get_classifier().state_dict())
        self.class_vectors.copy_(torch.from_numpy(vectors))
        self.class_known.copy_(torch.from_numpy(known))

    def probabilities(self, features: torch.Tensor) -> torch.Tensor:
        """(B, 1000) class probabilities, zero for the classes whose names the encoder does not know."""
        return torch.softmax(self.classifier(features), dim=1) * self.class_known

    def name_match(self, words: torch.Tensor, temperature: float) -> torch.Tensor:
        """(V, 1000): exp((cos(w, e_c) − 1)/τ) for unit word vectors w, 1 when w is class c's name vector."""
        return torch.exp((words @ self.class_vectors.T - 1) / temperature) * self.class_known

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(B, d) unit directions: the probability-weighted mean of the top classes' name vectors."""
        return self.direction(self.probabilities(features))

    def direction(self, probabilities: torch.Tensor) -> torch.Tensor:
        """ConSE's v from :meth:`probabilities` (B, 1000). Classes whose names the encoder does not know
        cannot vote; the others are renormalised."""
        top = probabilities.topk(self.top, dim=1)
        combined = torch.einsum("bt,btd->bd", top.values, self.class_vectors[top.indices])
        return combined / combined.norm(dim=1, keepdim=True).clamp_min(1e-12)


@register
class Conse(Method):
    name = "conse"
    Options = ConseOptions
    trainable = False
    score_name = "cosine"
    reduce = "cosine"

    def __init__(self, options: ConseOptions, feature_dim: int, word_dim: int, n_labels: int = 0):
        super().__init__(options, feature_dim, word_dim, n_labels)
        self.knowledge = ImagenetKnowledge(feature_dim, word_dim, options.top)

    @classmethod
    def build(cls, backbone, vectors, options: ConseOptions | None = None) -> "Conse":
        """ConSE from a backbone's ImageNet classifier and the vectors of the 1,000 class names."""
        method = cls(options or ConseOptions(), backbone.feature_dim, vectors.dim)
        method.attach(backbone, vectors)
        return method.eval()

    def attach(self, backbone, encoder) -> None:
        self.knowledge.fill(backbone, encoder)

    def factors(self, features: torch.Tensor) -> torch.Tensor:
        return self.knowledge(features)[:, None, :]
