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
import torch.nn.functional as F

from tagrank.methods.base import Method, register


@dataclass
class ConseOptions:
    top: int = 10  # ImageNet classes combined per image (the ConSE paper's T)
    # μ > 0: also score how nearly the tag *names* what the photo shows, μ·p·φ(w) (p: the class probabilities,
    # φ_c(w): how nearly w names class c or a WordNet synset above it, see ImagenetKnowledge.name_match):
    # 'dog' gets the dog breeds' probability; 0: the paper's ConSE, cosine to v alone
    name_weight: float = 0.0
    name_temperature: float = 0.05  # τ of the name match
    generality: float = 0.0  # γ: a generic name's share of its classes' probability, n^-γ for n classes below it
    region_weight: float = 0.5  # ρ: the whole view's best cells' share of the class probabilities (rest: the whole photo)


def imagenet_class_vectors(encoder) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors of the 1,000 ImageNet class names under ``encoder``, (1000, d), and which it knows."""
    from tagrank.images.backbone import imagenet_class_names

    return unit_vectors(encoder, imagenet_class_names())


def unit_vectors(encoder, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors of ``texts`` (zero rows for those the encoder lacks), and which it knows."""
    embedded = encoder.embed(texts)
    known = np.array([e.in_vocab for e in embedded.entries])
    vectors = np.zeros((len(known), encoder.dim), np.float32)
    vectors[known] = embedded.matrix / np.linalg.norm(embedded.matrix, axis=1, keepdims=True).clip(1e-12)
    return vectors, known


GENERIC_CANDIDATES = 16
"""Generic names a tag is matched against (the nearest by cosine): beyond them exp((cos − 1)/τ) is negligible."""


class ImagenetKnowledge(torch.nn.Module):
    """The backbone's frozen ImageNet classifier, the class names' vectors and (with ``generic``) the vectors of
    the WordNet names above the classes: pooled features -> class probabilities, ConSE's v, the name match.

    Saved with a model that uses it, so the model is self-contained (about 5 MB, 2.5 MB more with the
    generic names).
    """

    def __init__(self, feature_dim: int, word_dim: int, top: int, generic: bool = False, generality: float = 0.0,
                 region_weight: float = 0.5):
        super().__init__()
        from tagrank.images.backbone import region_evidence

        self.top = top
        self.generality = generality
        self.region_weight = region_weight
        pooled = region_evidence(torch.zeros(feature_dim))[0].shape[0]
        self.classifier = torch.nn.Linear(pooled, 1000).requires_grad_(False)
        self.register_buffer("class_vectors", torch.zeros(1000, word_dim))
        self.register_buffer("class_known", torch.zeros(1000, dtype=torch.bool))
        # the generic names (tagrank.labels.wordnet): their vectors (float16: only matched, never ranked) and
        # (name, class) pairs, a class for each class below the name's synset; sized when filled or loaded
        self.generic = generic
        if generic:
            self.register_buffer("generic_vectors", torch.zeros(0, word_dim, dtype=torch.float16))
            self.register_buffer("generic_pairs", torch.zeros(0, 2, dtype=torch.int32))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name in ("generic_vectors", "generic_pairs"):  # their sizes come with the saved model
            if prefix + name in state_dict:
                setattr(self, name, torch.empty_like(state_dict[prefix + name]))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def fill(self, backbone, encoder) -> None:
        vectors, known = imagenet_class_vectors(encoder)
        self.classifier.load_state_dict(backbone.model.get_classifier().state_dict())
        self.class_vectors.copy_(torch.from_numpy(vectors))
        self.class_known.copy_(torch.from_numpy(known))
        if self.generic:
            from tagrank.labels.wordnet import generic_names

            names = generic_names()
            vectors, known = unit_vectors(encoder, names.lemmas)
            pairs = [(r, c) for r, classes in enumerate(names.classes) if known[r] for c in classes]
            self.generic_vectors = torch.from_numpy(vectors).to(torch.float16)
            self.generic_pairs = torch.tensor(pairs, dtype=torch.int32).reshape(-1, 2)

    def probabilities(self, features: torch.Tensor) -> torch.Tensor:
        """(B, 1000) class probabilities, zero for the classes whose names the encoder does not know. With the
        whole view's cell evidence, (1 − ρ)·the whole photo's + ρ·each class's best cell's probability."""
        from tagrank.images.backbone import region_evidence

        pooled, regions = region_evidence(features)
        probabilities = torch.softmax(self.classifier(pooled), dim=1)
        if regions is not None:
            probabilities = (1 - self.region_weight) * probabilities + self.region_weight * regions
        return probabilities * self.class_known

    def name_match(self, words: torch.Tensor, temperature: float) -> torch.Tensor:
        """φ (V, 1000) for unit word vectors w: φ_c(w) = exp((cos(w, e_c) − 1)/τ), 1 when w is class c's name
        vector; with the generic names also n^-γ·exp((cos(w, g) − 1)/τ) for each generic name g above c
        (n: the classes below g), the larger of the two, so 'dog' gets a share of every breed."""
        match = torch.exp((words @ self.class_vectors.T - 1) / temperature) * self.class_known
        if not self.generic or not len(self.generic_pairs):
            return match
        rows, classes = self.generic_pairs.long().unbind(1)
        names = len(self.generic_vectors)
        below = torch.bincount(rows, minlength=names)
        share = below.clamp_min(1).to(words.dtype) ** -self.generality
        cosine = words @ self.generic_vectors.to(words.dtype).T
        nearest = cosine.topk(min(GENERIC_CANDIDATES, names), dim=1)
        strength = torch.exp((nearest.values - 1) / temperature) * share[nearest.indices]  # (V, candidates)
        # each (tag, candidate name) spreads its strength over the name's classes, sparsely: a name has 4.5
        # classes on average, so this is a scatter of ~V·16·4.5 values, not a dense (V, 16, 1000) product
        by_name = rows.argsort(stable=True)
        name_classes, first = classes[by_name], torch.cumsum(below, 0) - below
        candidate = nearest.indices.flatten()
        count = below[candidate]
        pair = torch.repeat_interleave(torch.arange(len(candidate), device=words.device), count)
        within = torch.arange(len(pair), device=words.device) - (torch.cumsum(count, 0) - count)[pair]
        cell = (pair // nearest.indices.shape[1]) * 1000 + name_classes[first[candidate][pair] + within]
        generic = torch.zeros(len(words) * 1000, dtype=words.dtype, device=words.device)
        generic.scatter_reduce_(0, cell, strength.flatten()[pair], reduce="amax")
        return torch.maximum(match, generic.view(len(words), 1000) * self.class_known)

    def reach(self, match: torch.Tensor) -> torch.Tensor:
        """(V,) how far the name match :meth:`name_match` (V, 1000) knows each tag, 0 to 1: its best class;
        with the generic names the sum over classes (capped at 1), since 'dog' has a small share of many."""
        if self.generic:
            return match.sum(dim=1).clamp(0, 1)
        return match.amax(dim=1).clamp(0, 1)

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

    def __init__(self, options: ConseOptions, feature_dim: int, word_dim: int, n_labels: int = 0):
        super().__init__(options, feature_dim, word_dim, n_labels)
        self.knowledge = ImagenetKnowledge(feature_dim, word_dim, options.top, self.named, options.generality,
                                           options.region_weight)

    @property
    def named(self) -> bool:
        return self.options.name_weight > 0

    @property
    def reduce(self) -> str:
        return "dot" if self.named else "cosine"

    @classmethod
    def build(cls, backbone, vectors, options: ConseOptions | None = None) -> "Conse":
        """ConSE from a backbone's ImageNet classifier and the vectors of the 1,000 class names."""
        method = cls(options or ConseOptions(), backbone.feature_dim, vectors.dim)
        method.attach(backbone, vectors)
        return method.eval()

    def attach(self, backbone, encoder) -> None:
        self.knowledge.fill(backbone, encoder)

    def label_space(self, label_vectors: torch.Tensor) -> torch.Tensor:
        """With the name match: [w/‖w‖; φ(w)], so that [v; μp]·x = cos(v, w) + μ p·φ(w)."""
        if not self.named:
            return label_vectors
        words = F.normalize(label_vectors, dim=1)
        return torch.cat([words, self.knowledge.name_match(words, self.options.name_temperature)], dim=1)

    def factors(self, features: torch.Tensor) -> torch.Tensor:
        probabilities = self.knowledge.probabilities(features)
        v = self.knowledge.direction(probabilities)
        if self.named:
            v = torch.cat([v, self.options.name_weight * probabilities], dim=1)
        return v[:, None, :]
