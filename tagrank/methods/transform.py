"""The image-dependent transformation model (the paper, section 3).

For each image the head emits a k×d matrix A; a tag w is relevant when ‖A w‖₂ is small. Trained with
the hinge rank loss against ``negatives`` labels sampled per image. Ranking uses the factor R of
A = QR (R is min(k, d)×d), since ‖A w‖ = ‖R w‖: the cost per label is d·min(k, d), not d·k.

With ``backbone_block`` A also holds what the backbone's ImageNet classifier knows (1.28 M photos): a
fixed block α·[I, −v] stacked on the learned rows, where v is ConSE's probability-weighted direction of
the top class names. On unit label vectors w with the affine coordinate, ‖[I, −v][w; 1]‖² = ‖w − v‖² =
2 − 2·cos(v, w), so

    ‖A [w; 1]‖² = α² (2 − 2 cos(v, w)) + ‖A_learned w‖²

which is ConSE's ranking as α → ∞ and the paper's model at α = 0. The learned rows are trained with
the block present, so they learn what it lacks.

With ``learned_gate`` = p > 0 the learned rows act on g(w)·w instead of w, where g(w) = max(0, cos(w, s))^p
for the training label s nearest to w, and what they no longer say goes to a per-image level c(x), the
``gate_level`` quantile of ‖A_learned s‖² over the training labels s:

    ‖A x‖² = α² (2 − 2 cos(v, w)) + g(w)² ‖A_learned w‖² + (1 − g(w)²) c(x)

So the learned rows speak with full weight on what the training photos taught (g = 1 on every training
label: training is unchanged) and fade on tags unlike all of it, which rank by the block (ConSE's
knowledge) at that level: neither pushed away by rows that never saw them nor favoured for lacking
that term. The label vector is x = [w; 1; g(w)·w; √(1 − g(w)²)] and A gains
one row (0, …, 0, √c(x)): still one fixed vector per tag and ‖A x‖ for the ranking engine.

With ``name_weight`` = β > 0 a last row reads how nearly the tag *is* each ImageNet class's name,
φ_c(w) = exp((cos(w, e_c) − 1)/τ), appended to x, against the class probabilities p:

    ‖A x‖² gains β² (1 − p·φ(w))²

ConSE's v blurs the top classes' names into one direction (the right name of a Tiny ImageNet photo
first for 47 % of validation photos); this row gives a tag that names a class that class's own
probability (65 %), and leaves other tags to the rest of A. Only this row reads φ's 1,000 columns,
so the ranking engine skips them for every other row (:func:`tagrank.ranking.engine.staircase`).

With both, ``unnamed_gate`` sets the gate's exponent on tags the name row does not know: p moves from
``learned_gate`` (a class's name) to ``unnamed_gate`` (no class's name) with m(w) = max_c φ_c(w)
(with the generic names min(1, Σ_c φ_c(w)): ImagenetKnowledge.reach).
"""

from __future__ import annotations

import warnings
import weakref
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F

from tagrank.errors import TagrankError
from tagrank.methods.losses import PAIRINGS, hinge_rank_loss, softmax_rank_loss, warp_loss
from tagrank.methods.base import HeadOptions, Method, mlp, register, sample_negatives
from tagrank.methods.conse import ImagenetKnowledge
from tagrank.ranking.engine import select


LOSSES = ("hinge", "warp", "softmax")
NAMES = 1000  # ImageNet-1k classes: the name row's coordinates
SAME_WORD = 1e-5  # the gate counts a cosine this close to 1 as the training label itself
REACH_ELEMENTS = 1 << 26
"""The learned rows' product ‖A_l w‖² holds photos × tags × k values at once: at most this many (in
:meth:`Transform.space_top_k`)."""
NAMED = 0.5  # a tag with name match max_c φ_c(w) at least this names a class (its own calibration curve)
NAME_FLOOR = 1e-4
"""Pruning (:meth:`Transform.space_top_k`) multiplies only φ's entries of at least this (0.7 % of the everyday
vocabulary's φ) and bounds what the rest add to p·φ (:class:`SpaceParts`)."""


@dataclass
class TransformOptions(HeadOptions):
    k: int = 100  # rows of A: the dimension of the space tags are mapped into (paper: 100)
    margin: float = 1.0  # hinge margin m
    negatives: int = 40  # labels sampled per image as negatives (paper: 40)
    normalize_vectors: bool = False  # rank unit-length word vectors instead of raw ones
    pairing: str = "mean"  # "mean": hinge on the average positive distance (paper); "each": every positive
    # "hinge": the paper's hinge rank loss; "warp": WARP's rank-weighted hinge on −‖A w‖ (negatives
    # are then the draws that estimate each positive's rank); "softmax": each positive against all of the
    # image's negatives at once, log(1 + Σ_n exp((‖A p‖ − ‖A n‖)/T)) (no sampling, no margin)
    loss: str = "hinge"
    temperature: float = 1.0  # T of the softmax loss
    word_hidden: int = 0  # width of a learned residual layer on the word vectors (0: none, as in the paper)
    affine: bool = False  # rank ‖A [w; 1]‖: a learned offset per image, so the origin word need not be best
    # The backbone's ImageNet knowledge as a fixed block of A (ranks unit word vectors):
    backbone_block: bool = False
    block_weight: float = 7.0  # α: the block's weight against the learned rows (α² = 50 in the first prototype)
    block_classes: int = 10  # ImageNet classes combined into the block's direction v (ConSE's T)
    # > 0: each image's learned rows are scaled to this Frobenius norm, so they can reorder close calls
    # but not outweigh the block (trained with it, unbounded rows grow to its scale); 0: unbounded
    learned_norm: float = 0.0
    # > 0: add this weight times the mean ‖A_learned u‖² over words u that no training photo constrains
    # (the everyday vocabulary minus the training and unseen labels), so that on such words the block
    # (ConSE's knowledge) decides instead of whatever the learned rows happen to do there
    background_weight: float = 0.0
    background_words: int = 256  # such words sampled per batch
    # p > 0: the learned rows see g(w)·w, g(w) = (cosine to the nearest training label)₊^p, and the rest of
    # their say goes to the level below, so they fade on tags unlike anything trained
    # (a ranking-time choice: g = 1 on every training label); 0: they score every tag alike
    learned_gate: float = 0.0
    # the level the faded say goes to: this quantile of the learned rows' ‖A_learned s‖² over the training
    # labels s, per image (0: the best-fitting label's, 0.5: the median's); ranking-time, like the gate
    gate_level: float = 0.0
    # the gate's exponent on tags that name no ImageNet class (needs the name row; None: learned_gate on
    # every tag). The exponent is m(w)·learned_gate + (1 − m(w))·unnamed_gate, m(w) = max_c φ_c(w)
    # (ImagenetKnowledge.reach): where the name row knows a tag the learned rows can fade hard; elsewhere they
    # are all that reads the photo's detail beyond ConSE's direction
    unnamed_gate: float | None = None
    # β > 0: one more fixed row, β·[1, −p], on the coordinates [1; φ(w)], where p are the ImageNet class
    # probabilities and φ_c(w) = exp((cos(w, e_c) − 1)/τ) says how nearly tag w *is* class c's name:
    # β²(1 − Σ_c p_c φ_c(w))². ConSE's direction blurs the top classes' names together; this row gives a tag
    # that names a class that class's own probability (needs backbone_block: the classifier and names)
    name_weight: float = 0.0
    name_temperature: float = 0.05  # τ: 0.05 counts a name with cosine 0.95 at e^-1 of an exact match
    # β when ranking (None: name_weight): the learned rows are trained beside the name row at name_weight, and
    # on photos of several objects a stronger name row can serve better than the one they were trained with
    ranking_name_weight: float | None = None
    # the name row also knows WordNet's names above the classes ('dog', 'vehicle', 'food': the classes below
    # them together, tagrank.labels.wordnet), each with n^-γ of its n classes' probability (γ = generality)
    generic_names: bool = False
    generality: float = 0.0
    region_weight: float = 0.5  # ρ: with the whole view's cells, their share of the class probabilities


@dataclass
class PhotoParts:
    """A batch of photos' parts of A, computed once however many label sets are ranked for the batch (the tags
    and the confidence's reference labels): the learned rows; with the block the class probabilities and ConSE's
    direction v; with the gate the training labels' learned part and the level (:meth:`Transform.photo_parts`)."""
    learned: torch.Tensor
    probabilities: torch.Tensor | None = None
    direction: torch.Tensor | None = None
    taught_reach: torch.Tensor | None = None  # ‖A_learned s‖² of every training label s, (B, T)
    level: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.learned)

    def __getitem__(self, rows: slice) -> "PhotoParts":
        return PhotoParts(*(None if part is None else part[rows] for part in
                            (getattr(self, f.name) for f in fields(self))))


@dataclass
class SpaceParts:
    """What pruning (:meth:`Transform.space_top_k`) reads of a label space besides its columns, once per space."""
    large: torch.Tensor | None  # φ's entries ≥ NAME_FLOOR, sparse (V, 1000); None without the name row
    # the rest of φ, each tag's largest and summed entry: they add at most min(Σp·rest_max, max p·rest_sum) to p·φ
    # (a random phrase's are ~1e-7 of NAME_FLOOR, a near-name's close to it)
    rest_max: torch.Tensor | None
    rest_sum: torch.Tensor | None
    word_norms: torch.Tensor  # ‖w‖², (V,)
    reach_norms: torch.Tensor  # ‖g(w)·w‖², the learned rows' input, (V,)
    # each tag's training label where its learned rows' input is that label's vector to the bit (the gate's
    # reference, whose learned part PhotoParts.taught_reach holds already), else -1; (V,), None without the gate
    taught: torch.Tensor | None


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
        if options.name_weight > 0 and not options.backbone_block:
            raise TagrankError("config field method.name_weight: the name row needs method.backbone_block = true")
        if options.unnamed_gate is not None and not (options.name_weight > 0 and options.learned_gate > 0):
            raise TagrankError("config field method.unnamed_gate: needs the name row (method.name_weight > 0) "
                               "and the gate (method.learned_gate > 0)")
        if options.backbone_block:
            self.knowledge = ImagenetKnowledge(feature_dim, word_dim, options.block_classes,
                                               options.generic_names and options.name_weight > 0, options.generality,
                                               options.region_weight)
        self.background: torch.Tensor | None = None  # training only: set by the trainer, not saved
        # per label space ranked (held by its vocabulary), by id: (a weak reference to it, its version, its
        # SpaceParts), for space_top_k
        self._space_parts: dict[int, tuple] = {}
        if self.gated:  # unit vectors of the training labels, saved: the gate's reference
            self.register_buffer("taught_vectors", torch.zeros(n_labels, word_dim))
        if options.word_hidden:
            # w + g(w), shared by every word (seen or not); g starts at zero so training starts from GloVe.
            self.word_map = mlp(word_dim, [options.word_hidden], word_dim, 0.0)
            torch.nn.init.zeros_(self.word_map[-1].weight)
            torch.nn.init.zeros_(self.word_map[-1].bias)

    @property
    def gated(self) -> bool:
        return self.options.backbone_block and self.options.learned_gate > 0

    @property
    def name_weight(self) -> float:
        """β: ``name_weight`` while training, ``ranking_name_weight`` (where set) in eval mode."""
        ranking = self.options.ranking_name_weight
        return self.options.name_weight if self.training or ranking is None else ranking

    @property
    def named(self) -> bool:
        return self.options.backbone_block and self.options.name_weight > 0

    @property
    def space_dim(self) -> int:
        """Width of the vectors A acts on: d, d + 1 with the affine coordinate (which the block uses), or
        2d + 2 with the gate ([w; 1; g(w)·w; √(1 − g(w)²)]); the name row adds φ(w)'s 1,000 at the end."""
        width = self.word_dim + int(self.options.affine or self.options.backbone_block)
        if self.gated:
            width = 2 * self.word_dim + 2
        return width + (NAMES if self.named else 0)

    @property
    def _faded(self) -> int:
        """The column of √(1 − g(w)²), which the gate's level row reads."""
        return 2 * self.word_dim + 1

    @property
    def learned_dim(self) -> int:
        return self.word_dim + int(self.options.affine)

    def head_outputs(self) -> int:
        return self.options.k * self.learned_dim  # the learned rows of A, read as k×d

    def attach(self, backbone, encoder) -> None:
        if self.options.backbone_block:
            self.knowledge.fill(backbone, encoder)

    def prepare(self, targets: torch.Tensor, label_vectors: torch.Tensor | None = None) -> None:
        super().prepare(targets, label_vectors)
        if self.gated:
            self.taught_vectors.copy_(F.normalize(label_vectors, dim=1))

    def gate(self, words: torch.Tensor, names: torch.Tensor | None = None) -> torch.Tensor:
        """g(w) for unit word vectors (V, d): (cosine to the nearest training label)₊^p, (V,); with
        ``unnamed_gate``, p moves from it to ``learned_gate`` as the tag's name match ``names`` (V, 1000) nears 1."""
        nearest = (words @ self.taught_vectors.T).amax(dim=1).clamp(0, 1)
        # a training label's cosine to itself rounds to just below 1: counted as 1, the gate leaves training
        # exactly as it is, whatever its exponent (so ranking-time gate settings need no retraining)
        nearest = torch.where(nearest >= 1 - SAME_WORD, torch.ones_like(nearest), nearest)
        power = torch.tensor(self.options.learned_gate, device=words.device)
        if self.options.unnamed_gate is not None:
            named = self.knowledge.reach(names)
            power = named * self.options.learned_gate + (1 - named) * self.options.unnamed_gate
        return nearest ** power

    @property
    def needs_backbone(self) -> bool:
        return self.options.backbone_block

    def learned(self, features: torch.Tensor) -> torch.Tensor:
        """The learned rows of A for each image, (B, k, learned_dim), as they act on word vectors."""
        A = self.head(features).view(-1, self.options.k, self.learned_dim)
        if self.options.learned_norm > 0:
            A = self.options.learned_norm * A / torch.linalg.matrix_norm(A)[:, None, None].clamp_min(1e-12)
        return A

    @property
    def _learned_columns(self) -> slice:
        """The label-space columns the learned rows read: w (and the affine 1), or g(w)·w when gated."""
        before = self.word_dim + 1 if self.gated else 0
        return slice(before, before + self.learned_dim)

    def _placed(self, learned: torch.Tensor) -> torch.Tensor:
        """The learned rows on the full label space, (B, k, space_dim); gated, they read g(w)·w."""
        columns = self._learned_columns
        return torch.nn.functional.pad(learned, (columns.start, self.space_dim - columns.stop))

    def level(self, taught_reach: torch.Tensor) -> torch.Tensor:
        """c(x): each image's ``gate_level`` quantile of ‖A_learned s‖² (``taught_reach``, (B, T)) over the
        training labels s, (B,)."""
        return torch.quantile(taught_reach, self.options.gate_level, dim=1)

    def block(self, v: torch.Tensor) -> torch.Tensor:
        """α·[I, −v] for each image, from ConSE's direction v (B, d), on the full label space: (B, d, space_dim)."""
        eye = torch.eye(self.word_dim, device=v.device).expand(len(v), -1, -1)
        block = torch.cat([eye, -v[:, :, None]], dim=2)
        block = torch.nn.functional.pad(block, (0, self.space_dim - self.word_dim - 1))
        return self.options.block_weight * block

    def matrices(self, features: torch.Tensor) -> torch.Tensor:
        """A for each image: (B, k, d), or (B, d + k [+ 1], space_dim) with the block on top of the learned
        rows (and the gate's level row below them)."""
        if not self.options.backbone_block:
            return self.learned(features)
        parts = self.photo_parts(features)
        learned = parts.learned
        rows = [self.block(parts.direction), self._placed(learned)]
        if self.gated:
            level = torch.zeros(len(learned), 1, self.space_dim, device=learned.device)
            level[:, 0, self._faded] = parts.level.sqrt()
            rows.append(level)
        if self.named:
            name = torch.zeros(len(learned), 1, self.space_dim, device=learned.device)
            name[:, 0, self.word_dim] = 1.0
            name[:, 0, -NAMES:] = -parts.probabilities
            rows.append(self.name_weight * name)
        return torch.cat(rows, dim=1)

    def committee(self, features: torch.Tensor) -> torch.Tensor:
        """The rows that vote in ``--explain``: the learned ones (the block's rows are not classifiers)."""
        return self._placed(self.learned(features))

    def distances(self, features: torch.Tensor | PhotoParts, label_vectors: torch.Tensor) -> torch.Tensor:
        """‖A x‖ for every image and label (B, V), label vectors already in :meth:`label_space`; ``features``
        may be their :meth:`photo_parts` already.

        The block's term is computed as α²‖w − v‖² directly: d rows fewer per label while training.
        """
        return self._distances(self.photo_parts(features), label_vectors)

    def photo_parts(self, features: torch.Tensor | PhotoParts) -> PhotoParts:
        """The parts of each photo's A that do not depend on the tags (unchanged if given already)."""
        if isinstance(features, PhotoParts):
            return features
        parts = PhotoParts(self.learned(features))
        if self.options.backbone_block:
            parts.probabilities = self.knowledge.probabilities(features)  # the block's and the name row's
            parts.direction = self.knowledge.direction(parts.probabilities)
        if self.gated:
            parts.taught_reach = self._reach(parts.learned, self.taught_vectors)
            parts.level = self.level(parts.taught_reach)
        return parts

    @staticmethod
    def _reach(learned: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
        """‖A_learned w‖² for every image and word (B, V)."""
        return torch.einsum("bkd,vd->bvk", learned, words).square().sum(-1)

    def _distances(self, parts: PhotoParts, label_vectors: torch.Tensor,
                   reach: torch.Tensor | None = None) -> torch.Tensor:
        """``reach``: the labels' learned part ‖A_l g(w)·w‖² (B, V), where known already."""
        squared = self._reach(parts.learned, label_vectors[:, self._learned_columns]) if reach is None else reach
        for term in self._other_terms(parts, label_vectors):
            squared = squared + term
        return squared.clamp_min(1e-12).sqrt()

    def _other_terms(self, parts: PhotoParts, label_vectors: torch.Tensor) -> list[torch.Tensor]:
        """The parts of ‖A x‖² (B, V each) besides the learned rows': the gate's level row, the name row, the
        block."""
        terms = []
        if self.gated:
            terms.append(self._level_term(parts, label_vectors))
        if self.named:
            terms.append(self.name_weight ** 2 * (1 - parts.probabilities @ label_vectors[:, -NAMES:].T).square())
        if self.options.backbone_block:
            terms.append(self._block_term(parts, label_vectors))
        return terms

    def _level_term(self, parts: PhotoParts, label_vectors: torch.Tensor) -> torch.Tensor:
        """(1 − g(w)²)·c(x), (B, V)."""
        return label_vectors[:, self._faded].square()[None, :] * parts.level[:, None]

    def _block_term(self, parts: PhotoParts, label_vectors: torch.Tensor,
                    norms: torch.Tensor | None = None) -> torch.Tensor:
        """α²‖w − v‖², (B, V); ``norms``: the words' ‖w‖², where known."""
        v, words = parts.direction, label_vectors[:, :self.word_dim]
        norms = words.square().sum(1) if norms is None else norms
        gap = norms[None, :] - 2 * v @ words.T + v.square().sum(1, keepdim=True)
        return self.options.block_weight ** 2 * gap

    def _name_bounds(self, parts: PhotoParts, space: SpaceParts) -> tuple[torch.Tensor, torch.Tensor]:
        """Lower and upper bounds (B, V each) of the name row's β²(1 − p·φ(w))² from φ's large entries: the
        rest add between 0 and min(Σp·rest_max(w), max p·rest_sum(w)) to p·φ (p ≥ 0)."""
        p = parts.probabilities
        low = (space.large @ p.T).T
        rest = torch.minimum(p.sum(dim=1, keepdim=True) * space.rest_max[None, :],
                             p.amax(dim=1, keepdim=True) * space.rest_sum[None, :])
        high = low + rest
        ends = torch.stack([(1 - low).square(), (1 - high).square()])
        # (1 − m)² over m in [low, high]: its least value is 0 where the interval holds 1
        least = torch.where((low <= 1) & (high >= 1), torch.zeros_like(low), ends.amin(dim=0))
        return self.name_weight ** 2 * least, self.name_weight ** 2 * ends.amax(dim=0)

    def _space_parts_of(self, space: torch.Tensor) -> SpaceParts:
        """The :class:`SpaceParts` of a label space: once per space (a vocabulary's stays alive with it)."""
        known = self._space_parts.get(id(space))
        if known is not None and known[0]() is space and known[1] == space._version:
            return known[2]
        large = rest_max = rest_sum = None
        if self.named:
            names = space[:, -NAMES:]
            above = names >= NAME_FLOOR
            with warnings.catch_warnings():  # "sparse CSR support is in beta": the product used is plain
                warnings.simplefilter("ignore", UserWarning)
                large = torch.where(above, names, 0).to_sparse_csr()
            rest = torch.where(above, 0, names)
            rest_max, rest_sum = rest.amax(dim=1), rest.sum(dim=1)
        taught = None
        if self.gated:
            words, vectors = space[:, self._learned_columns], self.taught_vectors.to(space.dtype)

            def same(chunk: torch.Tensor) -> torch.Tensor:
                nearest = (chunk @ vectors.T).argmax(dim=1)
                return torch.where((chunk == vectors[nearest]).all(dim=1), nearest, -1)

            step = max(1, REACH_ELEMENTS // len(vectors))  # (tags, training labels) at a time
            taught = torch.cat([same(words[i:i + step]) for i in range(0, len(words), step)])
        parts = SpaceParts(large, rest_max, rest_sum, space[:, :self.word_dim].square().sum(1),
                           space[:, self._learned_columns].square().sum(1), taught)
        # dropped with the space (a vocabulary let go, a 400k-tag one's are 40 MB)
        forget = weakref.ref(space, lambda _, cache=self._space_parts, key=id(space): cache.pop(key, None))
        self._space_parts[id(space)] = forget, space._version, parts
        return parts

    @staticmethod
    def _taught_rows(known: SpaceParts, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Each of a space's ``size`` rows' training label (-1: none) and whether it has one (SpaceParts.taught)."""
        taught = known.taught if known.taught is not None else torch.full((size,), -1)
        return taught, taught >= 0

    def space_top_k(self, features: torch.Tensor | PhotoParts, space: torch.Tensor,
                    k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact top-``k`` (smallest ‖A x‖) without the learned rows' product for most tags.

        The learned rows' part ‖A_l g(w)w‖² lies between 0 and σ²‖g(w)w‖² (σ: A_l's largest singular value),
        and the gate makes ‖g(w)w‖² tiny for most tags of an everyday vocabulary; on the training labels it is
        known already (the level's); the name row's p·φ(w) is bounded from φ's few large entries
        (:func:`_name_bounds`). So each tag's distance has bounds that cost little, and the k-th smallest upper
        bound caps the k-th distance: only the tags whose lower bound is under the cap for some photo of the
        batch are scored in full (and only those outside the training labels get the k×d product: a tenth to a
        seventh of the everyday vocabulary); the others cannot be in any photo's top k.
        """
        parts = self.photo_parts(features)
        if not self.options.backbone_block:  # A is the learned rows alone: nothing to bound them by
            return super().space_top_k(parts, space, k)
        known = self._space_parts_of(space)
        lower = self._block_term(parts, space, known.word_norms)
        if self.gated:
            lower = lower + self._level_term(parts, space)
        upper = lower
        if self.named:
            least, most = self._name_bounds(parts, known)
            lower, upper = lower + least, upper + most
        learned = parts.learned
        sigma2 = torch.linalg.eigvalsh(learned @ learned.mT)[:, -1:].clamp_min(0)  # σ² of each photo's A_l
        reach_low, reach_high = torch.zeros_like(lower), sigma2 * known.reach_norms[None, :]  # the learned part's
        taught, is_taught = self._taught_rows(known, len(space))
        if is_taught.any():  # the training labels' learned part is known exactly (the level's)
            reach_low[:, is_taught] = reach_high[:, is_taught] = parts.taught_reach[:, taught[is_taught]]
        lower, upper = lower + reach_low, upper + reach_high
        k = min(k, len(space))
        # a little room for the rounding of the sums (relative 1e-5 of distances²)
        cap = upper.topk(k, dim=1, largest=False).values[:, -1:] * (1 + 1e-5) + 1e-6
        candidates = (lower <= cap).any(dim=0)
        tags, known_tags = (candidates & ~is_taught).nonzero()[:, 0], (candidates & is_taught).nonzero()[:, 0]
        step = max(1, REACH_ELEMENTS // (len(parts) * self.options.k))  # (photos, tags, k) at a time
        distances = [self._distances(parts, space[tags[i:i + step]]) for i in range(0, len(tags), step)]
        if len(known_tags):
            distances.append(self._distances(parts, space[known_tags], parts.taught_reach[:, taught[known_tags]]))
        tags = torch.cat([tags, known_tags])
        relevance, indices = select(-torch.cat(distances, dim=1), tags.expand(len(parts), -1), k)
        return -relevance, indices

    def label_space(self, label_vectors: torch.Tensor) -> torch.Tensor:
        if self.options.normalize_vectors or self.options.backbone_block:
            label_vectors = F.normalize(label_vectors, dim=1)
        names = self.knowledge.name_match(label_vectors, self.options.name_temperature) if self.named else None
        gate = self.gate(label_vectors, names) if self.gated else None
        if self.options.word_hidden:
            label_vectors = label_vectors + self.word_map(label_vectors)
        parts = [label_vectors]
        if self.options.affine or self.options.backbone_block:
            parts.append(label_vectors.new_ones(len(label_vectors), 1))
        if gate is not None:
            parts += [gate[:, None] * label_vectors, (1 - gate.square()).clamp_min(0).sqrt()[:, None]]
        if names is not None:
            parts.append(names)
        return torch.cat(parts, dim=1) if len(parts) > 1 else label_vectors

    @property
    def tag_kind_names(self) -> tuple[str, ...]:
        return ("unnamed", "class name", "generic name") if self.named and self.options.generic_names else \
            ("unnamed", "class name")

    def tag_kinds(self, space: torch.Tensor) -> torch.Tensor | None:
        """With the name row: 1 for a tag that names an ImageNet class (ranked by that class's probability),
        0 for the rest; with the generic names, 2 for a tag the name row knows only as a name above several
        classes ('animal', 'dog': a share of each of their probabilities, none of them its own). The kinds' scores
        mean different things (validation: one confidence curve for unnamed and class names left a correct 'cat'
        at 0.27 beside breed names at 0.90; a curve each cut the cross-fitted log loss 0.0188 → 0.0171), and a
        generic name is right on many photos, so its usual best is no sign of a hub (ConfidenceConfig)."""
        if not self.named:
            return None
        names = space[:, -NAMES:]  # φ(w): the label space's last columns
        kinds = (self.knowledge.reach(names) >= NAMED).long()
        if self.options.generic_names:
            kinds = torch.where((kinds == 1) & (names.amax(dim=1) < NAMED), 2, kinds)
        return kinds

    def factors(self, features: torch.Tensor) -> torch.Tensor:
        A = self.matrices(features)
        if A.shape[1] <= self.space_dim:
            return A
        return torch.linalg.qr(A, mode="r").R  # (B, d, d), ‖A w‖ = ‖R w‖

    def scores(self, features: torch.Tensor, label_vectors: torch.Tensor | None = None) -> torch.Tensor:
        return self.distances(features, self.label_space(label_vectors))

    @property
    def structured_scores(self) -> bool:
        """‖A x‖² as the sum of its parts where A has the block and the name row: the learned rows (k×d per
        tag, and only for tags that can make the top k: :meth:`space_top_k`), the block (one cosine), the name
        row (p·φ). The generic form is ~1,800 columns wide there (1.4 s per photo over 400k tags against 55 ms,
        BENCHMARKS.md "Throughput"); a plain A of k×d rows is the engine's direct product anyway, which its
        bfloat16 candidates run faster."""
        return self.options.backbone_block

    def space_scores(self, features: torch.Tensor | PhotoParts, space: torch.Tensor) -> torch.Tensor:
        parts = self.photo_parts(features)
        # not while training: one product feeding both the level and the distances would sum their gradients in
        # another order
        if not self.gated or torch.is_grad_enabled():
            return self._distances(parts, space)
        # the training labels among the tags (all of the confidence's reference labels) have their learned part
        # from the level's product already
        taught, is_taught = self._taught_rows(self._space_parts_of(space), len(space))
        if not is_taught.any():
            return self._distances(parts, space)
        reach = parts.taught_reach.new_empty(len(parts), len(space))
        reach[:, is_taught] = parts.taught_reach[:, taught[is_taught]]
        if not is_taught.all():
            reach[:, ~is_taught] = self._reach(parts.learned, space[~is_taught][:, self._learned_columns])
        return self._distances(parts, space, reach)

    @property
    def wants_background(self) -> bool:
        return self.options.background_weight > 0

    def loss(self, features, positives, label_vectors, generator, known=None):
        parts = self.photo_parts(features)
        distances = self._distances(parts, self.label_space(label_vectors))
        if self.options.loss == "softmax":
            candidates = known if known is not None else torch.ones_like(positives)
            loss = softmax_rank_loss(distances, positives, candidates, self.options.temperature, self.label_weight)
        else:
            negatives = sample_negatives(positives, self.options.negatives, generator, known)
            if self.options.loss == "warp":
                loss = warp_loss(-distances, positives, negatives, self.options.margin, self.label_weight)
            else:
                loss = hinge_rank_loss(distances, positives, negatives, self.options.margin, self.label_weight,
                                       self.options.pairing)
        if self.wants_background and self.background is not None:
            rows = torch.randint(len(self.background), (self.options.background_words,), generator=generator)
            words = self.label_space(self.background[rows].to(features.device))
            loss = loss + self.options.background_weight * self._reach(parts.learned,
                                                                       words[:, self._learned_columns]).mean()
        return loss
