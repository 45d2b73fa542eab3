"""The Python API users call: ``Tagger.load(...)`` then ``tagger.rank(images, vocab, top=5)``.

A Tagger joins a backbone, a method (a trained model, the embedded default, or training-free ConSE)
and word vectors. Zero-shot methods rank any vocabulary through the ranking engine; label-scoring
methods (BCE, WARP) rank the part of a vocabulary that is among their training labels.
Results are plain data: one dict per image with its top tags, their scores, ranks and confidences
(:mod:`tagrank.ranking.confidence`: the chance a tag is right, fitted on validation photos).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from tagrank._log import log
from tagrank.errors import TagrankError
from tagrank.labels.index import CACHED_VOCABULARY_MIN_TAGS, LabelIndex, embedded_vocabulary
from tagrank.ranking.confidence import Calibration, reference_scale
from tagrank.ranking.engine import exact_scores, explain_votes, rank_scores
from tagrank.labels.encoders import LabelEncoder, load_encoder
from tagrank.labels.vocab import DEFAULT_VOCABULARY, load_vocabulary, read_vocabulary

DEFAULT_MODEL = Path(__file__).resolve().parent / "models" / "default"
CONSE_DESCRIPTION = Path(__file__).resolve().parent / "models" / "conse" / "model.json"
"""ConSE's confidence calibration (it has no weights of its own), fitted with the default model."""
DEFAULT_VOCAB_FILE = "vocab.txt"
CONFIDENCE_POOL = 50
"""The best-scored tags among which a calibrated tagger picks its most confident (tags of two kinds have two
confidence curves, so the score order and the confidence order can differ)."""
SYNONYM_ROOM = 16
"""Tags ranked beyond the list's end, so that it is still full when synonyms are left out (_first_of_groups)."""
CACHED_SPACE_BYTES = 64 << 20
CACHED_SPACES = 8
"""Label spaces up to this size are kept on disk, this many (the most recently written; see Tagger._label_space)."""
STRUCTURED_ELEMENTS = 1 << 24
"""Structured exact search (Tagger._structured) scores this many (photo, tag) pairs at a time (at least one
photo): each part of the score is a photos × tags matrix."""
PREPARED_VOCABULARIES = 16
PREPARED_BYTES = 512 << 20
"""Prepared vocabularies kept in memory, least recently used dropped first (the disk cache stays): at most this
many, and this many bytes of label vectors (a 20,000-tag list in the default model's space is 140 MB)."""


@dataclass
class PreparedVocabulary:
    """A vocabulary ready for one method: tag names plus engine vectors or label columns."""

    tags: list[str]
    engine: object | None = None  # zero-shot methods: an engine of tagrank.ranking.search
    columns: torch.Tensor | None = None  # label-scoring methods: columns of the model's outputs
    oov: list[str] = field(default_factory=list)
    kinds: torch.Tensor | None = None  # each tag's kind, where the confidence is calibrated per kind
    usual: torch.Tensor | None = None  # each tag's usual best z over the model's reference photos, once asked
    key: str | None = None  # names this model's label space of these tags on disk (large vocabularies)
    groups: torch.Tensor | None = None  # each tag's synonym group (WordNet synset), -1 for none: one per list


@dataclass
class RankOutput:
    results: list[dict]
    failed: dict[str, str]
    oov: list[str]


class Tagger:
    """Backbone + method + word vectors, ready to tag photos."""

    def __init__(self, method, backbone, vectors: LabelEncoder, meta: dict, default_tags: list[str],
                 search: str = "auto", model_file: Path | None = None, reference_photos: torch.Tensor | None = None):
        """``model_file``: the trained model's weights, which name it (ConSE has none); ``reference_photos``:
        features of some of its training photos (:mod:`tagrank.ranking.confidence`, hubs)."""
        from tagrank.ranking.search import check_search

        self.search = check_search(search)  # how zero-shot methods search a vocabulary (tagrank.ranking.search)
        self.method = method.eval()
        self.backbone = backbone
        self.vectors = vectors
        self.meta = meta
        self.model_file = model_file
        self.default_tags = default_tags
        self.calibration = Calibration.from_dict(meta.get("confidence"), f"model {model_file or meta.get('method')}")
        self.reference_photos = reference_photos.float() if reference_photos is not None else None
        self._photos_scale: tuple[torch.Tensor, torch.Tensor] | None = None  # see _reference_photos_scale
        if self.calibration is not None and self.calibration.lowers_hubs and self.reference_photos is None:
            raise TagrankError(f"model {self.name}'s confidence needs its reference photos, which its weights file lacks")
        self._prepared: OrderedDict[tuple, PreparedVocabulary] = OrderedDict()
        self._lock = threading.Lock()  # guards _prepared and _forwards
        self._identity: str | None = None  # see _model_identity
        self._forwards: dict[str, object] = {}  # the backbone's forward on each runtime used (see forward_pass)

    # -- construction ------------------------------------------------------------------------------

    @classmethod
    def load(cls, model: str | os.PathLike | None = None, method: str | None = None,
             vectors: str | os.PathLike | LabelEncoder | None = None, search: str = "auto") -> "Tagger":
        """A trained model directory, the embedded default (``model=None``), or ``method="conse"``;
        ``search``: how vocabularies are searched (:mod:`tagrank.ranking.search`)."""
        from tagrank.images.backbone import Backbone
        from tagrank.model import TaggingModel

        if method is not None and method != "conse" and model is None:
            raise TagrankError(f"method {method!r} needs a trained model (--model RUN_DIR); only conse needs none")
        if method == "conse" and model is not None:
            raise TagrankError("conse is training-free: give --model or --method conse, not both")
        default_tags = _default_tags()
        if method == "conse":
            from tagrank.methods.conse import Conse

            word_vectors = load_encoder(vectors)
            backbone = Backbone("lite0")
            meta = {"method": "conse", "labels": [], "backbone": {"name": "lite0", "signature": backbone.signature},
                    "vector_source": word_vectors.source, "vector_checksum": word_vectors.checksum,
                    "dim": word_vectors.dim, "confidence": _conse_calibration(word_vectors)}
            return cls(Conse.build(backbone, word_vectors), backbone, word_vectors, meta, default_tags, search)
        directory = Path(model) if model is not None else DEFAULT_MODEL
        if model is None and not (directory / "model.safetensors").is_file():
            raise TagrankError(f"the embedded default model is missing from {directory}; "
                               "rebuild it with scripts/build_default_model.py or pass --model")
        trained = TaggingModel.load(directory)
        word_vectors = load_encoder(vectors if vectors is not None else trained.vector_source)
        trained.check_vectors(word_vectors)
        backbone = Backbone(trained.backbone)
        expected = trained.meta["backbone"].get("signature")
        if expected and expected != backbone.signature:
            raise TagrankError(f"model {directory} was trained on {expected} features, this tagrank makes {backbone.signature}")
        if trained.backbone_state is not None:  # finetuned CNN: its own weights, its own feature cache
            from tagrank.checksums import file_sha256

            backbone.load_state_dict(trained.backbone_state)
            backbone.variant = "finetuned-" + file_sha256(directory / "model.safetensors")[:12]
        own = directory / DEFAULT_VOCAB_FILE
        if own.is_file():
            tags = read_vocabulary(own)
        elif "default_vocabulary" in trained.meta:  # a named vocabulary recorded in model.json
            tags = load_vocabulary(trained.meta["default_vocabulary"])
        else:
            tags = trained.labels if model is not None else default_tags
        return cls(trained.method, backbone, word_vectors, trained.meta, tags, search, directory / "model.safetensors",
                   trained.reference_photos)

    @property
    def name(self) -> str:
        return self.meta["method"]

    # -- vocabularies ------------------------------------------------------------------------------

    def prepare(self, vocab: Sequence[str] | LabelIndex | None = None, persist: bool = True) -> PreparedVocabulary:
        """Embed (zero-shot) or map onto training labels (BCE/WARP) a vocabulary; kept in memory per vocabulary
        (several threads may ask at once). ``persist=False``: never written to the disk caches (a service's
        inline lists)."""
        if isinstance(vocab, LabelIndex):
            key = ("index", id(vocab))
        else:
            vocab = list(vocab) if vocab is not None else list(self.default_tags)
            if not vocab:
                raise TagrankError("empty vocabulary")
            key = ("tags", tuple(vocab))
        with self._lock:
            if key in self._prepared:
                self._prepared.move_to_end(key)
                return self._prepared[key]
        prepared = self._prepare(vocab, persist)  # outside the lock: the work, which another thread may repeat
        with self._lock:
            self._prepared[key] = prepared
            # a service sees many inline vocabularies: keep a few, and at most PREPARED_BYTES of them
            while len(self._prepared) > 1 and (len(self._prepared) > PREPARED_VOCABULARIES or
                                               sum(map(_size, self._prepared.values())) > PREPARED_BYTES):
                self._prepared.popitem(last=False)
        return prepared

    def warm(self, vocab: PreparedVocabulary) -> PreparedVocabulary:
        """Compute now what ranking ``vocab`` will need beyond its vectors (the confidence's reference labels,
        each tag's usual best): a service does it off its ranking thread."""
        if self.calibration is not None:
            self.prepare(self.calibration.reference)
            if self.calibration.lowers_hubs:
                self._usual_best(vocab)
        return vocab

    def _prepare(self, vocab, persist: bool = True) -> PreparedVocabulary:
        if self.method.zero_shot:
            if isinstance(vocab, LabelIndex):
                from tagrank.labels.index import check_vector_match

                check_vector_match(vocab.manifest, self.vectors, "label index")
                tags, raw, oov = vocab.tags, vocab.vectors, vocab.oov
                clusters = vocab.faiss if vocab.clusters else None
            else:
                tags, raw, oov = embedded_vocabulary(vocab, self.vectors, persist=persist)
                clusters = None
            from tagrank.ranking.search import make_engine

            key = self._space_key(tags) if persist and len(tags) >= CACHED_VOCABULARY_MIN_TAGS else None
            vectors = self._label_space(raw, key)
            with torch.no_grad():
                kinds = self.method.tag_kinds(vectors)
            engine = make_engine(vectors, self.search, clusters, raw, self.method.label_space, self.method.reduce,
                                 memory_key=lambda: self._vocabulary_key(tags))
            return PreparedVocabulary(tags, engine=engine, oov=oov, kinds=kinds, key=key, groups=_synonym_groups(tags))
        tags = vocab.tags if isinstance(vocab, LabelIndex) else vocab
        from tagrank.images.datasets import resolve_labels

        labels = self.meta["labels"]
        known, unknown = resolve_labels(tags, labels)
        if not known:
            raise TagrankError(f"{self.name} ranks only its {len(labels)} training labels, and none of the "
                               f"{len(tags)} vocabulary tags is among them")
        if unknown:
            shown = ", ".join(map(repr, unknown[:20])) + (" ..." if len(unknown) > 20 else "")
            log.warning("%s ranks only its training labels: %d tag(s) left out: %s", self.name, len(unknown), shown)
        where = {label: j for j, label in enumerate(labels)}
        known = list(dict.fromkeys(known))
        return PreparedVocabulary(known, columns=torch.tensor([where[t] for t in known]), oov=unknown)

    def _space_key(self, tags: Sequence[str]) -> str:
        """Names this model (its weights and options), encoder and tags for the disk caches of large vocabularies."""
        import json
        from dataclasses import asdict

        from tagrank.checksums import text_key

        return text_key([self._model_identity(), json.dumps(asdict(self.method.options), sort_keys=True),
                         self.vectors.checksum, *tags])

    def _model_identity(self) -> str:
        """The weights file's sha256 (read once per process), or the description of a model without one."""
        import json

        from tagrank.checksums import file_sha256

        if self._identity is None:
            self._identity = file_sha256(self.model_file) if self.model_file is not None else \
                json.dumps(self.meta, sort_keys=True, default=str)
        return self._identity

    @torch.no_grad()
    def _label_space(self, raw: np.ndarray, key: str | None) -> torch.Tensor:
        """The method's label space of a vocabulary; with a ``key`` (a large vocabulary) kept on disk: the default
        vocabulary's name match costs a quarter second at every start."""
        from tagrank.array_cache import read_entry, write_entry

        path = _cache_dir() / "label-spaces" / f"{key}.safetensors"
        entry = read_entry(path, {"key": key}) if key else None
        if entry is not None and entry[1]["space"].shape[0] == len(raw):
            return torch.from_numpy(entry[1]["space"])
        space = self.method.label_space(torch.from_numpy(raw))
        if key and space.numel() * space.element_size() <= CACHED_SPACE_BYTES:
            write_entry(path, {"space": space.numpy()}, {"key": key}, CACHED_SPACES)
        return space

    @torch.no_grad()
    def _usual_best(self, vocab: PreparedVocabulary) -> torch.Tensor:
        """(V,) each tag's usual best standardised relevance over the reference photos (confidence.hub_prior);
        computed once per vocabulary, a large one's kept on disk (the default vocabulary's takes seconds)."""
        from tagrank.array_cache import read_entry, write_entry
        from tagrank.ranking.confidence import hub_prior

        if vocab.usual is not None:
            return vocab.usual
        path = _cache_dir() / "usual-relevance" / f"{vocab.key}.safetensors"
        entry = read_entry(path, {"key": vocab.key, "share": self.calibration.hub_share}) if vocab.key else None
        if entry is not None and entry[1]["usual"].shape == (len(vocab.tags),):
            vocab.usual = torch.from_numpy(entry[1]["usual"])
            return vocab.usual
        mean, std = self._reference_photos_scale()
        vocab.usual = hub_prior((self._reference_relevance(vocab) - mean) / std, self.calibration.hub_share)
        if vocab.key:
            write_entry(path, {"usual": vocab.usual.numpy()}, {"key": vocab.key, "share": self.calibration.hub_share},
                        CACHED_SPACES)
        return vocab.usual

    def _vocabulary_key(self, tags: Sequence[str]) -> str:
        """A name for this model ranking these tags (the approx search keeps its frequent tags under it): the
        model's weights file (or, without one, its description), the label encoder and the tags."""
        from tagrank.checksums import text_key

        return text_key([self._model_identity(), self.vectors.checksum, *tags])

    # -- ranking -----------------------------------------------------------------------------------

    def _scores(self, x: torch.Tensor, vocab: PreparedVocabulary, factors: torch.Tensor | None) -> torch.Tensor:
        """(B, V) scores of every tag of ``vocab``, computed directly (a small vocabulary)."""
        if vocab.engine is not None:
            return exact_scores(factors, vocab.engine.vectors, self.method.reduce)
        return self.method.scores(x)[:, vocab.columns]

    @torch.no_grad()
    def _reference_photos_scale(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Each reference photo's mean and std (N, 1) over the calibration's reference labels: once per process,
        and kept on disk beside the reference labels' label space."""
        from tagrank.array_cache import read_entry, write_entry

        if self._photos_scale is None:
            reference = self.prepare(self.calibration.reference)
            path = _cache_dir() / "usual-relevance" / f"{reference.key}-scale.safetensors"
            entry = read_entry(path, {"key": reference.key}) if reference.key else None
            if entry is not None and entry[1]["mean"].shape == (len(self.reference_photos), 1):
                self._photos_scale = torch.from_numpy(entry[1]["mean"]), torch.from_numpy(entry[1]["std"])
            else:
                self._photos_scale = reference_scale(self._reference_relevance(reference))
                if reference.key:
                    write_entry(path, {"mean": self._photos_scale[0].numpy(), "std": self._photos_scale[1].numpy()},
                                {"key": reference.key}, CACHED_SPACES)
        return self._photos_scale

    def _reference_relevance(self, vocab: PreparedVocabulary) -> torch.Tensor:
        """(N, V) relevance of every tag of ``vocab`` for the model's N reference photos, 50 photos at a time."""
        return torch.cat([self.method.relevance(self._photo_scores(self.reference_photos[start:start + 50], vocab))
                          for start in range(0, len(self.reference_photos), 50)])

    def _photo_scores(self, x, vocab: PreparedVocabulary) -> torch.Tensor:
        """(B, V) scores of every tag of ``vocab`` for many photos at once, in the method's cheapest form; ``x``:
        their features or :meth:`Method.photo_parts`."""
        if vocab.engine is not None:
            return self.method.space_scores(x, vocab.engine.vectors)
        return self.method.scores(x)[:, vocab.columns]

    def _structured(self, vocab: PreparedVocabulary) -> bool:
        """Whether exact search goes through the method's structured scores rather than the engine's scan."""
        from tagrank.ranking.engine import Vocabulary

        return self.method.structured_scores and type(vocab.engine) is Vocabulary

    def _structured_top_k(self, x, vocab: PreparedVocabulary, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact top-``k`` from :meth:`Method.space_top_k`, a few photos at a time (its intermediates are
        photos × tags); ``x``: their features or :meth:`Method.photo_parts`."""
        step = max(1, STRUCTURED_ELEMENTS // len(vocab.tags))
        parts = [self.method.space_top_k(x[start:start + step], vocab.engine.vectors, k)
                 for start in range(0, len(x), step)]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    def check_threshold(self, threshold: float | None, name: str = "--threshold") -> None:
        """Refuse a threshold that is no confidence; ``name``: what the caller calls it (the service: 'threshold')."""
        if threshold is None:
            return
        if not 0 <= threshold <= 1:  # NaN fails both comparisons
            raise TagrankError(f"{name} is a confidence between 0 and 1, got {threshold}")
        if self.calibration is None:
            raise TagrankError(f"model {self.name} has no confidence calibration (trained before tagrank fitted one): "
                               f"retrain it, or leave out {name}")

    @torch.no_grad()
    def rank_features(self, features: np.ndarray | torch.Tensor, vocab: PreparedVocabulary, top: int = 5,
                      threshold: float | None = None, explain: bool = False) -> list[list[dict]]:
        """Top tags for pooled backbone features (N, D): per image a list of {rank, tag, score, confidence[, votes]}.

        Ordered by confidence where the tagger has one (ties by score), else by score. ``threshold`` keeps
        only tags whose confidence is at least that (at most ``top`` per image).
        """
        if top <= 0:
            raise TagrankError(f"--top must be a positive number, got {top}")
        self.check_threshold(threshold)
        x = torch.as_tensor(features, dtype=torch.float32)
        if len(x) == 0:  # no photo of a batch decoded
            return []
        structured = self._structured(vocab)
        factors = self.method.factors(x) if vocab.engine is not None and not structured else None
        photos = self.method.photo_parts(x) if structured else x  # shared by the tags and the reference labels
        # With a confidence the list is ordered by it: the most confident of the CONFIDENCE_POOL best-scored
        # tags (a fixed pool, so the top 5 is the start of the top 10)
        wanted = max(top, CONFIDENCE_POOL) if self.calibration is not None else top
        if vocab.groups is not None:  # room for the synonyms left out
            wanted = min(wanted + SYNONYM_ROOM, len(vocab.tags))
        if structured:
            scores, indices = self._structured_top_k(photos, vocab, wanted)
        elif vocab.engine is not None:
            scores, indices = vocab.engine.top_k(factors, wanted, self.method.reduce)
        else:
            scores, indices = rank_scores(self._scores(x, vocab, None), wanted, self.method.lower_is_better)
        if not torch.isfinite(scores).all():  # never NaN into JSON: say what is broken instead
            raise TagrankError(f"model {self.name} gave NaN or infinite scores: its weights or these photos' "
                               "features are damaged")
        confidence = None
        if self.calibration is not None:
            reference = self.prepare(self.calibration.reference)
            reference_scores = (self._photo_scores(photos, reference) if structured
                                else self._scores(x, reference, factors))
            mean, std = reference_scale(self.method.relevance(reference_scores))
            z = (self.method.relevance(scores) - mean) / std
            kinds = vocab.kinds[indices] if vocab.kinds is not None else None
            if self.calibration.lowers_hubs:  # hubs lowered (tagrank.ranking.confidence)
                z = z - self.calibration.hub_weights(kinds, z) * self._usual_best(vocab)[indices]
            confidence = self.calibration.confidence(z, kinds)
            # stable: equal confidences (the curve's flat stretches) keep the score order
            order = confidence.argsort(dim=1, descending=True, stable=True)
            scores, indices, confidence = (t.gather(1, order) for t in (scores, indices, confidence))
        if vocab.groups is not None:
            scores, indices, confidence = _first_of_groups(scores, indices, confidence, vocab.groups)
        scores, indices = scores[:, :top], indices[:, :top]
        confidence = confidence[:, :top] if confidence is not None else None
        votes = None
        if explain:
            if not hasattr(self.method, "committee"):
                raise TagrankError(f"--explain needs the transform method (each row of A votes); {self.name} has no A")
            votes = explain_votes(self.method.committee(x), vocab.engine.vectors, indices, top)
        out = []
        for b in range(x.shape[0]):
            tags = []
            for r in range(scores.shape[1]):
                sure = float(confidence[b, r]) if confidence is not None else None
                if threshold is not None and sure < threshold:
                    continue
                entry = {"rank": r + 1, "tag": vocab.tags[int(indices[b, r])], "score": float(scores[b, r]),
                         "confidence": sure}
                if votes is not None:
                    entry["votes"] = int(votes[b, r])
                tags.append(entry)
            out.append(tags)
        return out

    def forward_pass(self, backend: str, photos: int):
        """The backbone's forward pass on the runtime ``backend`` means for ``photos`` photos (None: torch's);
        converted once per tagger (tagrank.images.runtimes)."""
        from tagrank.images.runtimes import choose_runtime, runtime_forward

        runtime = choose_runtime(backend, photos)
        if runtime == "torch":
            return None
        with self._lock:
            if runtime not in self._forwards:
                self._forwards[runtime] = runtime_forward(runtime, self.backbone, _cache_dir())
            return self._forwards[runtime]

    def iter_rank(self, images: Sequence[str | os.PathLike], vocab=None, top: int = 5, threshold: float | None = None,
                  explain: bool = False, batch_size: int = 32, progress: bool = False,
                  backend: str = "auto") -> Iterator[dict]:
        """Yield, image by image in input order, ``{"image", "tags"}`` or ``{"image", "error"}``.

        ``backend``: where the CNN runs, "torch", "openvino", "onnxruntime" or "auto" (the fastest installed for
        many photos: tagrank.images.runtimes)."""
        from tagrank._log import progress_bar
        from tagrank.images.features import iter_features

        prepared = self.prepare(vocab)
        if top <= 0:
            raise TagrankError(f"--top must be a positive number, got {top}")
        self.check_threshold(threshold)
        paths = [str(p) for p in images]
        forward = self.forward_pass(backend, len(paths))
        bar = progress_bar(total=len(paths), enabled=progress, desc="tagging", unit="img")  # one bar, whole run
        try:  # each batch ranked as the CNN gives it, while the next one is decoded
            for batch in iter_features(self.backbone, paths, batch_size, forward=forward):
                ranked = dict(zip(batch.good, self.rank_features(batch.features, prepared, top, threshold, explain)))
                bar.update(len(batch.paths))
                for p in batch.paths:
                    yield {"image": p, "tags": ranked[p]} if p in ranked else {"image": p, "error": batch.failed[p]}
        finally:
            bar.close()

    def rank(self, images: Sequence[str | os.PathLike], vocab=None, top: int = 5, threshold: float | None = None,
             explain: bool = False, batch_size: int = 32, progress: bool = False, backend: str = "auto") -> RankOutput:
        """Tag ``images`` with the ``top`` best tags of ``vocab`` (default: the model's vocabulary)."""
        results, failed = [], {}
        for item in self.iter_rank(images, vocab, top, threshold, explain, batch_size, progress, backend):
            if "error" in item:
                failed[item["image"]] = item["error"]
            else:
                results.append(item)
        return RankOutput(results, failed, self.prepare(vocab).oov)


def _synonym_groups(tags: list[str]) -> torch.Tensor | None:
    """Each tag's synonym group (tagrank.labels.wordnet.synonym_groups); None when no two tags share one."""
    from tagrank.labels.wordnet import synonym_groups

    groups = torch.tensor(synonym_groups(list(tags)), dtype=torch.long)
    named = groups[groups >= 0]
    return groups if len(named) > len(named.unique()) else None


def _first_of_groups(scores: torch.Tensor, indices: torch.Tensor, confidence: torch.Tensor | None,
                     groups: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Each ranked list (B, P) with the later tags of a synonym group moved to its end (stable: the order of
    the rest is kept), so that the top of the list names each thing once."""
    group = groups[indices]  # (B, P)
    earlier = torch.ones(group.shape[1], group.shape[1], dtype=torch.bool).tril(-1)  # [i, j]: j before i
    repeated = ((group[:, :, None] == group[:, None, :]) & earlier & (group[:, :, None] >= 0)).any(dim=2)
    order = repeated.to(torch.int8).argsort(dim=1, stable=True)
    return (scores.gather(1, order), indices.gather(1, order),
            confidence.gather(1, order) if confidence is not None else None)


def _size(vocab: PreparedVocabulary) -> int:
    """Bytes a prepared vocabulary holds in its label vectors."""
    vectors = getattr(vocab.engine, "vectors", None)
    return vectors.numel() * vectors.element_size() if isinstance(vectors, torch.Tensor) else 0


def _cache_dir() -> Path:
    from tagrank.images.features import DEFAULT_CACHE_DIR

    return DEFAULT_CACHE_DIR


def _conse_calibration(encoder: LabelEncoder) -> dict | None:
    """The shipped calibration of ConSE's confidence, if it was fitted with this encoder."""
    import json

    if not CONSE_DESCRIPTION.is_file():
        return None
    described = json.loads(CONSE_DESCRIPTION.read_text(encoding="utf-8"))
    return described.get("confidence") if described.get("vector_checksum") == encoder.checksum else None


def default_description() -> dict:
    """The embedded default model's model.json (its recipe, its view of a photo), without loading its weights."""
    import json

    from tagrank.model import DESCRIPTION

    return json.loads((DEFAULT_MODEL / DESCRIPTION).read_text(encoding="utf-8"))


def _default_tags() -> list[str]:
    """What a plain ``tagrank rank`` ranks: the everyday vocabulary (or the embedded model's own list)."""
    path = DEFAULT_MODEL / DEFAULT_VOCAB_FILE
    return read_vocabulary(path) if path.is_file() else load_vocabulary(DEFAULT_VOCABULARY)
