"""ConSE (Norouzi et al., ICLR 2014): training-free zero-shot tagging from ImageNet probabilities.

The backbone's ImageNet-1k classifier gives class probabilities; the word vectors of the ``top``
most probable class names, weighted by probability, combine into one vector u, and tags are ranked
by cosine to u. It needs no trained model, so it is the comparison point for every zero-shot claim.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tagrank.methods.base import Method, register


@dataclass
class ConseOptions:
    top: int = 10  # ImageNet classes combined per image (the ConSE paper's T)


@register
class Conse(Method):
    name = "conse"
    Options = ConseOptions
    trainable = False
    score_name = "cosine"
    reduce = "cosine"

    def __init__(self, options: ConseOptions, feature_dim: int, word_dim: int, n_labels: int = 0):
        super().__init__(options, feature_dim, word_dim, n_labels)
        self.classifier = torch.nn.Linear(feature_dim, 1000)
        self.register_buffer("class_vectors", torch.zeros(1000, word_dim))
        self.register_buffer("class_known", torch.zeros(1000, dtype=torch.bool))

    @classmethod
    def build(cls, backbone, vectors, options: ConseOptions | None = None) -> "Conse":
        """ConSE from a backbone's ImageNet classifier and the vectors of the 1,000 class names."""
        from tagrank.backbone import imagenet_class_names

        method = cls(options or ConseOptions(), backbone.feature_dim, vectors.dim)
        method.classifier.load_state_dict(backbone.model.get_classifier().state_dict())
        for i, name in enumerate(imagenet_class_names()):
            entry = vectors.lookup(name)
            if entry.in_vocab:
                method.class_vectors[i] = torch.from_numpy(np.asarray(vectors.vector(entry)))
                method.class_known[i] = True
        return method.eval()

    def factors(self, features: torch.Tensor) -> torch.Tensor:
        # Classes whose names the vectors do not know cannot vote; renormalise over the rest.
        probs = torch.softmax(self.classifier(features), dim=1) * self.class_known
        top = probs.topk(self.options.top, dim=1)
        combined = torch.einsum("bt,btd->bd", top.values, self.class_vectors[top.indices])
        combined = combined / combined.norm(dim=1, keepdim=True).clamp_min(1e-12)
        return combined[:, None, :]
