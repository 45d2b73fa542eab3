"""The method interface, the registry, and what the heads share (MLP, negative sampling, calibration)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

METHODS: dict[str, type["Method"]] = {}


def register(cls: type["Method"]) -> type["Method"]:
    """Class decorator: make a method available by its ``name`` to config, train, rank and eval."""
    METHODS[cls.name] = cls
    return cls


@dataclass
class HeadOptions:
    """Options every trained head has: hidden layers between the CNN features and the output."""

    hidden: list[int] = field(default_factory=lambda: [1024])  # the paper's fc6/fc7 were AlexNet's own 4096-wide layers
    dropout: float = 0.0
    # Weight a label as a positive by (its training images)^-power, rescaled to average 1 over all
    # positive occurrences: > 0 counters the ranking losses' pull towards frequent tags (per-word
    # metrics); 0 is every published method's uniform weighting.
    positive_weight_power: float = 0.0


def mlp(in_dim: int, hidden: list[int], out_dim: int, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_dim, width), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        in_dim = width
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


def sample_negatives(positives: torch.Tensor, count: int, generator: torch.Generator,
                     known: torch.Tensor | None = None) -> torch.Tensor:
    """``count`` label indices per image drawn uniformly from its non-positive labels, (B, count).

    ``known`` (B, V) limits the draw to labels the image's dataset annotates (a mixture: a Corel5k word
    is unknown, not absent, for a Tiny ImageNet photo). Without replacement when an image has enough
    negatives, with replacement otherwise (tiny label sets).
    """
    negative = ~positives if known is None else ~positives & known
    weights = negative.float().cpu()  # sampled on the CPU with the CPU generator, on any device
    empty = weights.sum(dim=1) == 0
    # An image with no negative to draw: draw its positives, whose loss terms the losses mask.
    weights[empty] = torch.where(positives[empty].any(dim=1, keepdim=True), positives[empty].float(), 1.0).cpu()
    enough = bool((weights.sum(dim=1) >= count).all())
    return torch.multinomial(weights, count, replacement=not enough, generator=generator).to(positives.device)


def label_weights(targets: torch.Tensor, power: float) -> torch.Tensor:
    """(V,) weights count_c^-power for the training label matrix ``targets`` (N, V), averaging 1 per positive."""
    counts = targets.float().sum(dim=0)
    weights = counts.clamp_min(1) ** -power
    return weights * counts.sum().clamp_min(1) / (weights * counts).sum().clamp_min(1e-12)


def standardise(relevance: torch.Tensor) -> torch.Tensor:
    """Per-image standardisation over the ranked vocabulary: makes per-image scales comparable across images."""
    mean = relevance.mean(dim=1, keepdim=True)
    std = relevance.std(dim=1, keepdim=True, unbiased=False).clamp_min(1e-12)
    return (relevance - mean) / std


class Method(nn.Module):
    """A tagging method on pooled CNN features.

    Scores are in the method's natural units (``score_name``); ``lower_is_better`` says which way they
    rank. Zero-shot methods also expose :meth:`factors` for the ranking engine: score(w) = ‖F w‖₂
    (``reduce = "norm"``), F·w (``"dot"``) or F·w/‖w‖ (``"cosine"``), with F of shape (B, m, d).
    """

    name: ClassVar[str]
    Options: ClassVar[type] = HeadOptions
    zero_shot: ClassVar[bool] = True  # scores word vectors, so ranks any vocabulary
    trainable: ClassVar[bool] = True
    lower_is_better: ClassVar[bool] = False
    score_name: ClassVar[str] = "score"
    reduce: ClassVar[str] = "dot"
    calibration: ClassVar[str] = "per-image standardisation"  # how scores become comparable across images

    def __init__(self, options, feature_dim: int, word_dim: int, n_labels: int):
        super().__init__()
        self.options = options
        self.feature_dim, self.word_dim, self.n_labels = feature_dim, word_dim, n_labels
        outputs = self.head_outputs()
        if outputs is not None:
            self.head = mlp(feature_dim, options.hidden, outputs, options.dropout)
        # Training-time only (not saved): set by prepare() from the training labels.
        self.register_buffer("label_weight", torch.ones(n_labels), persistent=False)

    def head_outputs(self) -> int | None:
        """Width of the MLP head on the CNN features (None: the method has no trained head)."""
        return None

    @property
    def needs_backbone(self) -> bool:
        """True when :meth:`attach` must be given the backbone and encoder before training."""
        return False

    def attach(self, backbone, encoder) -> None:
        """Called once before training with the backbone and label encoder (for methods built on them)."""

    def prepare(self, targets: torch.Tensor, label_vectors: torch.Tensor | None = None) -> None:
        """Called once before training with the training label matrix (sets the positives' weights) and,
        for zero-shot methods, the training labels' vectors."""
        power = getattr(self.options, "positive_weight_power", 0.0)
        self.label_weight.copy_(label_weights(targets, power))

    def loss(self, features: torch.Tensor, positives: torch.Tensor, label_vectors: torch.Tensor | None,
             generator: torch.Generator, known: torch.Tensor | None = None) -> torch.Tensor:
        """The training loss of a batch; ``known`` (B, V): labels that may serve as negatives (None: all)."""
        raise NotImplementedError(f"{self.name} is not trained")

    def factors(self, features: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{self.name} scores its training labels only")

    def label_space(self, label_vectors: torch.Tensor) -> torch.Tensor:
        """The vectors the factors act on (a method may normalise the raw word vectors)."""
        return label_vectors

    tag_kind_names: tuple[str, ...] = ()
    """What each of :meth:`tag_kinds`' values means (its index), e.g. ("unnamed", "class name", "generic name")."""

    def tag_kinds(self, space: torch.Tensor) -> torch.Tensor | None:
        """(V,) the kind of each tag, from its vector in :meth:`label_space` (V, D), where the method scores kinds
        of tags differently enough that confidence is calibrated per kind (:mod:`tagrank.ranking.confidence`); None:
        one kind."""
        return None

    def scores(self, features: torch.Tensor, label_vectors: torch.Tensor | None = None) -> torch.Tensor:
        """(B, V) scores of every label; ``label_vectors`` (V, d) for zero-shot methods."""
        from tagrank.ranking.engine import exact_scores

        return exact_scores(self.factors(features), self.label_space(label_vectors), self.reduce)

    structured_scores = False
    """Whether :meth:`space_scores` evaluates the score's parts in their own cheap forms (then the ranker uses it
    for exact search instead of the engine's generic quadratic form)."""

    def photo_parts(self, features: torch.Tensor):
        """What :meth:`space_scores` and :meth:`space_top_k` take for a batch of photos, computed once however many
        label sets are ranked for it: the features, unless a method has per-photo parts to share (Transform)."""
        return features

    def space_scores(self, features: torch.Tensor, space: torch.Tensor) -> torch.Tensor:
        """(B, V) scores of labels already in :meth:`label_space` (V, D): the engine's exact form, unless a method
        has a cheaper one of its own (:attr:`structured_scores`)."""
        from tagrank.ranking.engine import exact_scores

        return exact_scores(self.factors(features), space, self.reduce)

    def space_top_k(self, features: torch.Tensor, space: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact top-``k`` (scores, indices (B, k)) of labels already in :meth:`label_space`, ties to the lower
        index: from :meth:`space_scores`, unless a method can leave out tags that cannot make it."""
        from tagrank.ranking.engine import rank_scores

        return rank_scores(self.space_scores(features, space), k, self.lower_is_better)

    def relevance(self, scores: torch.Tensor) -> torch.Tensor:
        """Scores turned so that higher is more relevant."""
        return -scores if self.lower_is_better else scores

    def comparable(self, scores: torch.Tensor) -> torch.Tensor:
        """Relevance comparable across images, for class-wise metrics (mAP, C-P/C-R over images)."""
        relevance = self.relevance(scores)
        return standardise(relevance) if self.calibration == "per-image standardisation" else relevance
