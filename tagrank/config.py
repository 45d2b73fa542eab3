"""Configuration: ``configs/*.toml`` mapped onto typed dataclasses.

A config file has up to five tables, each a dataclass below (the method's own options are the
dataclass its registered class declares, see ``tagrank/methods``)::

    [method]   name = "transform", k = 100, margin = 1.0, negatives = 40, ...
    [train]    epochs, batch_size, lr, lr_schedule, weight_decay, val_fraction, seed, ...
    [data]     min_images, drop_digits, exclude, unseen, [[data.sources]] (a mixture)
    [backbone] name, finetune, lr_scale, flip_features, batch_size, cache_dir
    [confidence] reference_photos, hub_weight, hub_share, generic_hub_weight (the fit of the confidence users threshold)

Every field has its default here, with the paper's value where the paper gives one; an unknown field
is an error naming it. Command-line flags override fields after the file is read.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tagrank.errors import TagrankError


@dataclass
class TrainConfig:
    epochs: int = 40
    batch_size: int = 64
    lr: float = 1e-3  # Adam (the paper's optimiser)
    lr_schedule: str = "cosine"  # "cosine", "step" or "constant": the paper decreases the rate over training
    lr_step_every: int = 10  # for "step": epochs between decays
    lr_step_gamma: float = 0.5
    weight_decay: float = 0.0
    val_fraction: float = 0.1  # held out from the training split for validation and best-checkpoint choice
    patience: int = 0  # stop after this many epochs without validation improvement (0: never)
    seed: int = 0
    flip: bool = True  # mirror images half the time (cached features: needs backbone.flip_features)
    device: str = "auto"  # "auto" (CUDA when available), "cpu", "cuda", "cuda:1", ...
    # store the trained weights as float16 (half the file; ranking computes in float32), rounded before the
    # confidence is fitted, so that what is calibrated is what is shipped
    half_weights: bool = False


@dataclass
class SourceConfig:
    """One dataset of a training mixture (``[[data.sources]]``)."""

    dataset: str  # reader: corel5k, tinyimagenet, imagefolder, csv, folder, nuswide
    root: str  # its root, relative to the working directory
    weight: float = 1.0  # its share of each epoch's training draws, relative to the other sources
    unseen: str | None = None  # file of its tags (or class ids) held out from training
    # > 0: this source is that many mosaics of 2–4 of the dataset's photos (one label each), several objects per
    # picture (tagrank.images.mosaics), made once into the feature cache's folder
    mosaics: int = 0


@dataclass
class DataConfig:
    min_images: int = 1  # a training tag needs this many training images
    keywords_from: str = "any"  # dataset 'library': any, sidecar, xmp or iptc (where a photo's keywords are read)
    drop_digits: bool = False  # drop tags containing digits (Flickr noise such as "2008", "d80")
    exclude: list[str] = field(default_factory=list)
    unseen: str | None = None  # file of tags held out from training (zero-shot split)
    # Train on several datasets at once (`tagrank train mixture`); a photo's negatives come only from
    # its own dataset's labels.
    sources: list[SourceConfig] = field(default_factory=list)


@dataclass
class BackboneConfig:
    name: str = "lite0"  # "lite0" (224 px) or "lite2" (260 px)
    finetune: bool = False  # train the CNN end to end on decoded photos (slow on CPU; for GPU users)
    lr_scale: float = 0.1  # with finetune: the CNN's learning rate relative to the head's
    flip_features: bool = False  # also cache features of mirrored images (doubles extraction time)
    batch_size: int = 32
    cache_dir: str | None = None  # default: $TAGRANK_CACHE or ~/.cache/tagrank
    # where the CNN extracts the features: torch (bit for bit reproducible), or openvino / onnxruntime when
    # installed (about 3x faster on a CPU, features within ~1e-5 of torch's; cached apart from torch's)
    runtime: str = "torch"


@dataclass
class ConfidenceConfig:
    """How the confidence is fitted after training (tagrank.ranking.confidence)."""

    reference_photos: int = 200  # training photos whose features the model keeps (equal numbers per source)
    hub_weight: float = 0.0  # lambda: a tag's standardised relevance minus lambda x its usual best relevance
    hub_share: float = 0.05  # "usual best": the mean over this share of the reference photos where it is highest
    # lambda for the tags a method knows as generic names (its tag kind "generic name": 'animal', 'dog'), which are
    # right on many photos, so a high usual best is no sign of a hub; None: hub_weight
    generic_hub_weight: float | None = None


@dataclass
class Config:
    method: str = "transform"
    method_options: Any = None  # the method's own dataclass, filled in by resolve()
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    confidence: ConfidenceConfig = field(default_factory=ConfidenceConfig)

    def to_dict(self) -> dict:
        return {"method": {"name": self.method, **dataclasses.asdict(self.method_options)},
                "train": dataclasses.asdict(self.train), "data": dataclasses.asdict(self.data),
                "backbone": dataclasses.asdict(self.backbone), "confidence": dataclasses.asdict(self.confidence)}


def fill(cls: type, values: dict, where: str) -> Any:
    """Build dataclass ``cls`` from ``values``, checking names and types; errors name ``where.field``."""
    known = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        if key not in known:
            raise TagrankError(f"unknown config field {where}.{key} (known: {', '.join(known)})")
        kwargs[key] = _coerce(value, hints[key], f"{where}.{key}")
    return cls(**kwargs)


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if value is None and type(None) in args:
        return None
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", ())):
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except TagrankError:
                pass
        raise TagrankError(f"config field {where}: {value!r} is not a {hint}")
    if origin is list:
        if not isinstance(value, list):
            raise TagrankError(f"config field {where}: expected a list, got {value!r}")
        return [_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise TagrankError(f"config field {where}: expected a table, got {value!r}")
        missing = [f.name for f in dataclasses.fields(hint)
                   if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and f.name not in value]
        if missing:
            raise TagrankError(f"config field {where}: missing {', '.join(missing)}")
        return fill(hint, value, where)
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint in (int, str, bool) and type(value) is hint:
        return value
    raise TagrankError(f"config field {where}: expected {getattr(hint, '__name__', hint)}, got {value!r}")


def load_config(path: str | os.PathLike | None = None, method: str | None = None) -> Config:
    """Read a TOML config (or the defaults); ``method`` overrides ``[method].name``."""
    raw: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise TagrankError(f"config file not found: {path}")
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise TagrankError(f"cannot parse config {path}: {exc}") from None
    return config_from_dict(raw, method, str(path))


def config_from_dict(raw: dict, method: str | None = None, where: str = "the config") -> Config:
    """A config from its tables (a TOML file's, or a model's recorded ``config``)."""
    unknown = set(raw) - {"method", "train", "data", "backbone", "confidence"}
    if unknown:
        raise TagrankError(f"unknown config table(s) {', '.join(sorted(unknown))} in {where}")
    options = dict(raw.get("method", {}))
    name = method or options.pop("name", "transform")
    options.pop("name", None)
    if method and raw.get("method", {}).get("name", method) != method:
        options = {}  # another method's options do not apply to the one asked for
    return resolve(Config(method=name, train=fill(TrainConfig, raw.get("train", {}), "train"),
                          data=fill(DataConfig, raw.get("data", {}), "data"),
                          backbone=fill(BackboneConfig, raw.get("backbone", {}), "backbone"),
                          confidence=fill(ConfidenceConfig, raw.get("confidence", {}), "confidence")), options)


def resolve(config: Config, options: dict | None = None) -> Config:
    """Attach the method's own options dataclass (defaults, or ``options``)."""
    from tagrank.methods import get_method

    cls = get_method(config.method)
    config.method_options = fill(cls.Options, options or {}, "method")
    return config


def override(obj: Any, **values: Any) -> None:
    """Set the fields of a config dataclass given on the command line (None means 'not given')."""
    for key, value in values.items():
        if value is not None:
            if not hasattr(obj, key):
                raise TagrankError(f"unknown option {key}")
            setattr(obj, key, value)


def check_numbers(config: Config) -> None:
    """Refuse settings no run can use (NaN, a negative rate, a seed beyond 64 bits, a runtime not installed),
    naming the field, before any work; the method's own options are checked where they are used."""
    import math

    def need(ok: bool, where: str, value: Any, what: str) -> None:
        if not ok:
            raise TagrankError(f"config field {where} must be {what}, got {value!r}")

    def finite(value: float) -> bool:
        return isinstance(value, (int, float)) and math.isfinite(value)

    train, confidence = config.train, config.confidence
    need(finite(train.lr) and train.lr > 0, "train.lr", train.lr, "a positive number")
    need(finite(train.weight_decay) and train.weight_decay >= 0, "train.weight_decay", train.weight_decay,
         "zero or more")
    need(finite(train.lr_step_gamma) and train.lr_step_gamma > 0, "train.lr_step_gamma", train.lr_step_gamma,
         "a positive number")
    need(finite(train.val_fraction) and 0 <= train.val_fraction < 1, "train.val_fraction", train.val_fraction,
         "at least 0 and below 1")
    need(0 <= train.seed < 2 ** 63, "train.seed", train.seed, "between 0 and 2^63 - 1")
    for name in ("epochs", "patience"):
        need(getattr(train, name) >= 0, f"train.{name}", getattr(train, name), "zero or more")
    for name in ("batch_size", "lr_step_every"):
        need(getattr(train, name) > 0, f"train.{name}", getattr(train, name), "positive")
    for i, source in enumerate(config.data.sources):
        need(isinstance(source.mosaics, int) and source.mosaics >= 0, f"data.sources[{i}].mosaics", source.mosaics,
             "a whole number, zero or more")
    need(confidence.reference_photos > 0, "confidence.reference_photos", confidence.reference_photos, "positive")
    need(finite(confidence.hub_weight) and confidence.hub_weight >= 0, "confidence.hub_weight", confidence.hub_weight,
         "zero or more")
    need(confidence.generic_hub_weight is None or (finite(confidence.generic_hub_weight)
                                                    and confidence.generic_hub_weight >= 0),
         "confidence.generic_hub_weight", confidence.generic_hub_weight, "zero or more")
    need(finite(confidence.hub_share) and 0 < confidence.hub_share <= 1, "confidence.hub_share",
         confidence.hub_share, "above 0 and at most 1")
    from tagrank.images.runtimes import check_runtime

    check_runtime(config.backbone.runtime, "config field backbone.runtime", auto=False)
