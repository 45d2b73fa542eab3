"""The one trainer: every method, the same loop, the same data, the same checkpoints.

``run_training`` reads a dataset, applies the tag filters, fetches backbone features through the
cache and calls :func:`train` on them. ``train`` holds out a validation split, runs Adam with a
decreasing learning rate, validates each epoch (sample mAP on the held-out images), keeps the best
model, and checkpoints atomically after every epoch so that ``--resume`` continues exactly where an
interrupted run stopped. Randomness is derived from (seed, epoch): same seed, same data, same model.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tagrank._log import log, progress_bar
from tagrank.atomic import check_output_dir, write_text_atomic
from tagrank.ranking.confidence import calibrate
from tagrank.config import check_numbers, Config, ConfidenceConfig
from tagrank.images.datasets import Dataset, filter_tags, load_dataset, match_labels, read_tag_list
from tagrank.training.distributed import join
from tagrank.errors import TagrankError
from tagrank.images.features import Features
from tagrank.methods import Method, get_method
from tagrank.evaluation.metrics import average_precision
from tagrank.model import TaggingModel, load_tensors, save_tensors
from tagrank.labels.encoders import LabelEncoder

CHECKPOINT = "checkpoint.safetensors"
HISTORY = "train.jsonl"


@dataclass
class TrainResult:
    model: TaggingModel
    history: list[dict]
    best_epoch: int
    seconds: float
    validation_paths: list[str]  # the photos held out for validation (best-epoch choice), never trained on


class CachedFeatures:
    """Batches of cached backbone features: the frozen-backbone default. Flip picks mirrored-image features."""

    backbone = None

    def __init__(self, features: np.ndarray, flipped: np.ndarray | None, device: torch.device):
        self.X = torch.from_numpy(features).to(device)
        self.X_flip = torch.from_numpy(flipped).to(device) if flipped is not None else None

    @property
    def dim(self) -> int:
        return int(self.X.shape[1])

    def batch(self, rows: torch.Tensor, generator: torch.Generator | None, train: bool, flip: bool) -> torch.Tensor:
        x = self.X[rows]
        if train and flip and self.X_flip is not None:
            mirrored = (torch.rand(len(rows), generator=generator) < 0.5).to(x.device)
            x = torch.where(mirrored[:, None], self.X_flip[rows], x)
        return x


class ImageFeatures:
    """Batches decoded from the photos through a trainable backbone (``--finetune``), flipped at random."""

    def __init__(self, backbone, paths: list[str], device: torch.device):
        self.backbone = backbone.to(device)
        self.paths = paths
        self.device = device

    @property
    def dim(self) -> int:
        return self.backbone.feature_dim

    def batch(self, rows: torch.Tensor, generator: torch.Generator | None, train: bool, flip: bool) -> torch.Tensor:
        from tagrank.images.backbone import Backbone
        from tagrank.images.photos import load_image

        x = Backbone.to_tensor(np.stack([self.backbone.preprocess(load_image(self.paths[i])) for i in rows.tolist()]))
        if train and flip:
            mirrored = torch.rand(len(rows), generator=generator) < 0.5
            x[mirrored] = x[mirrored].flip(3)
        self.backbone.eval()  # BatchNorm statistics stay as pretrained: small batches would wreck them
        with torch.set_grad_enabled(train):
            return self.backbone(x.to(self.device))


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise TagrankError(f"config field train.device: unknown device {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TagrankError(f"train.device is {name!r} but no CUDA device is available")
    return device


def learning_rate(config: Config, epoch: int) -> float:
    t = config.train
    if t.lr_schedule == "constant":
        return t.lr
    if t.lr_schedule == "step":
        return t.lr * t.lr_step_gamma ** (epoch // max(1, t.lr_step_every))
    if t.lr_schedule == "cosine":
        return t.lr * 0.5 * (1 + math.cos(math.pi * epoch / max(1, t.epochs)))
    raise TagrankError(f"config field train.lr_schedule: unknown schedule {t.lr_schedule!r} (cosine, step, constant)")


def _epoch_seed(seed: int, epoch: int) -> int:
    return seed * 1_000_003 + epoch


def adam(params, lr: float, weight_decay: float = 0.0) -> torch.optim.Adam:
    """Adam, as one fused kernel per step where PyTorch has one (CPU, CUDA): its default on CPU loops over the
    parameters op by op, a third of the training time of a head with 13 M weights (k = 100, Corel5k)."""
    groups = list(params)
    tensors = [p for g in groups for p in (g["params"] if isinstance(g, dict) else [g])]
    fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in tensors) or None
    return torch.optim.Adam(groups, lr=lr, weight_decay=weight_decay, fused=fused)


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    state = optimizer.state_dict()
    tensors = {f"optim.{i}.{name}": value for i, entry in state["state"].items() for name, value in entry.items()}
    return tensors, {"param_groups": state["param_groups"], "state_keys": {str(i): list(e) for i, e in state["state"].items()}}


def _restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict, meta: dict) -> None:
    state = {int(i): {name: tensors[f"optim.{i}.{name}"] for name in names} for i, names in meta["state_keys"].items()}
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def _trainable(name: str):
    method_cls = get_method(name)
    if not method_cls.trainable:
        raise TagrankError(f"method {name!r} needs no training: use it directly with rank/eval --method {name}")
    return method_cls


def _without_epochs(config: dict | None) -> dict | None:
    """A config minus train.epochs: a run may be resumed to train for longer."""
    if config is None:
        return None
    return {**config, "train": {k: v for k, v in config["train"].items() if k != "epochs"}}


def _split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    n_val = int(round(n * fraction)) if fraction > 0 else 0
    if fraction > 0 and n - n_val < 1:
        raise TagrankError(f"too few images ({n}) to hold out {fraction:.0%} for validation")
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def train(config: Config, data: Dataset, features: Features, vectors: LabelEncoder, out: str | Path,
          resume: bool = False, progress: bool = True, backbone=None, unseen: list[str] = ()) -> TrainResult:
    """Train ``config.method`` on ``data`` (training labels already filtered) with cached ``features``.

    ``unseen`` names the labels held out for zero-shot evaluation; it is recorded in model.json.

    With ``config.backbone.finetune`` the ``backbone`` is trained too, on photos decoded each batch;
    ``features`` then only tells which photos decode.
    """
    started = time.time()
    out = Path(out)
    check_numbers(config)
    method_cls = _trainable(config.method)
    if not resume and ((out / CHECKPOINT).exists() or (out / "model.json").exists()):
        raise TagrankError(f"{out} already holds a training run: pass --resume to continue it, or choose another --out")
    check_output_dir(out, (CHECKPOINT, HISTORY, "model.json"))  # never mix a model into a user's own folder

    # Rows: images whose features exist (decode failures were reported by the cache).
    row_of = {p: i for i, p in enumerate(features.paths)}
    keep = [i for i, p in enumerate(data.paths) if p in row_of]
    if len(keep) < len(data):
        log.warning("%d of %d training images could not be decoded and are left out", len(data) - len(keep), len(data))
    data = data.subset(keep)

    # Labels the vectors do not know (zero-shot heads) or left without images cannot be trained.
    data = filter_tags(data, min_images=1, exclude=vectors.embed(data.labels).oov if method_cls.zero_shot else [])
    label_vectors = torch.from_numpy(vectors.embed(data.labels).matrix) if method_cls.zero_shot else None
    if len(data) == 0:
        raise TagrankError("no training images left")
    device = resolve_device(config.train.device)
    team = join(device)  # under torchrun, several processes share every batch
    device = team.local(device)
    finetune = config.backbone.finetune
    if finetune and backbone is None:
        raise TagrankError("finetuning needs the backbone")
    if finetune and backbone.whole:  # its photos keep their aspect: no two batches need share a shape
        raise TagrankError(f"config field backbone.finetune: backbone {backbone.name} keeps each photo's aspect; "
                           "finetune a centre-crop backbone (lite0, lite2)")
    if finetune:
        source = ImageFeatures(backbone, list(data.paths), device)
    else:
        rows = [row_of[p] for p in data.paths]
        broken = int((~np.isfinite(features.features[rows])).any(axis=1).sum())
        if broken:  # they would train a model of NaN
            raise TagrankError(f"the feature cache holds NaN or infinite features for {broken} photo(s): delete "
                               f"{config.backbone.cache_dir or 'the cache folder (TAGRANK_CACHE)'}'s features and run again")
        source = CachedFeatures(features.features[rows],
                                features.flipped[rows] if features.flipped is not None else None, device)
    Y = torch.from_numpy(data.matrix).to(device)
    K = torch.from_numpy(data.known).to(device) if data.known is not None else None  # mixtures: known labels
    if label_vectors is not None:
        label_vectors = label_vectors.to(device)
    train_rows, val_rows = _split(len(data), config.train.val_fraction, config.train.seed)
    draw_weights = _draw_weights(data, train_rows, [s.weight for s in config.data.sources])

    torch.manual_seed(config.train.seed)
    method: Method = method_cls(config.method_options, source.dim, vectors.dim, len(data.labels))
    if method.needs_backbone:
        if backbone is None:
            raise TagrankError(f"{config.method} with these options is built on the backbone: give the backbone")
        method.attach(backbone, vectors)
    if getattr(method, "wants_background", False):
        method.background = _background_words(vectors, data.labels, unseen).to(device)
    method = method.to(device)
    method.prepare(Y[train_rows], label_vectors)
    trained = [p for p in method.parameters() if p.requires_grad]
    groups = [{"params": trained, "scale": 1.0}]
    if finetune:
        groups.append({"params": list(backbone.parameters()), "scale": config.backbone.lr_scale})
    optimizer = adam(groups, config.train.lr, config.train.weight_decay)
    meta = {
        "method": config.method, "options": config.to_dict()["method"], "config": config.to_dict(),
        "feature_dim": source.dim, "dim": vectors.dim, "labels": list(data.labels),
        "vector_source": vectors.source, "vector_checksum": vectors.checksum, "encoder": vectors.describe(),
        "backbone": {"name": config.backbone.name, "signature": backbone.signature if backbone is not None else "",
                     "finetuned": finetune},
        "unseen": list(unseen),
        "score": {"name": method_cls.score_name, "lower_is_better": method_cls.lower_is_better,
                  "calibration": method_cls.calibration},
        "trained": {"dataset": data.name, "n_train": len(train_rows), "n_val": len(val_rows),
                    "seed": config.train.seed},
    }
    meta["options"].pop("name", None)

    history: list[dict] = []
    start_epoch, best_score, best_epoch, stale = 0, -math.inf, -1, 0
    if resume and (out / CHECKPOINT).exists():
        tensors, state = load_tensors(out / CHECKPOINT)
        other = f"{out / CHECKPOINT} was made with another config, label set or label vectors; cannot resume"
        if _without_epochs(state.get("config")) != _without_epochs(config.to_dict()) or state.get("labels") != meta["labels"] \
                or state.get("vector_checksum", vectors.checksum) != vectors.checksum:
            raise TagrankError(other)
        try:
            method.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        except RuntimeError:  # a checkpoint from before vector checksums were recorded
            raise TagrankError(other) from None
        if finetune:
            backbone.load_state_dict({k[9:]: v for k, v in tensors.items() if k.startswith("backbone.")})
        _restore_optimizer(optimizer, tensors, state["optimizer"])
        history, start_epoch = state["history"], state["epoch"] + 1
        best_score, best_epoch, stale = state["best_score"], state["best_epoch"], state["stale"]
        log.info("resuming %s from epoch %d", out, start_epoch + 1)
    elif resume:
        log.info("nothing to resume in %s: starting a new run", out)
    out.mkdir(parents=True, exist_ok=True)

    val_generator_seed = _epoch_seed(config.train.seed, -1)
    if start_epoch == 0 and len(val_rows):  # the untrained model's figures: where validation starts from
        history = [{"epoch": 0, **_validate(method, source, val_rows, Y, K, label_vectors, val_generator_seed)}]
    for epoch in range(start_epoch, config.train.epochs):
        epoch_started = time.time()
        lr = learning_rate(config, epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr * group["scale"]
        torch.manual_seed(_epoch_seed(config.train.seed, epoch))  # dropout
        generator = torch.Generator().manual_seed(_epoch_seed(config.train.seed, epoch))
        if draw_weights is None:
            order = torch.from_numpy(train_rows)[torch.randperm(len(train_rows), generator=generator)]
        else:  # a mixture: each source its configured share of the epoch's draws
            order = torch.from_numpy(train_rows)[torch.multinomial(draw_weights, len(train_rows), True, generator=generator)]
        if team.distributed:  # the same order everywhere; each process its own draws for its share
            generator = torch.Generator().manual_seed(_epoch_seed(config.train.seed, epoch) * 1009 + team.rank + 1)
        method.train()
        losses = []
        batches = range(0, len(order), config.train.batch_size)
        bar = progress_bar(batches, progress and team.leader, desc=f"{config.method} epoch {epoch + 1}/{config.train.epochs}",
                           unit="batch")
        for start in bar:
            batch = order[start:start + config.train.batch_size]
            idx = team.share(batch)
            optimizer.zero_grad(set_to_none=True)
            if len(idx):
                x = source.batch(idx, generator, train=True, flip=config.train.flip)
                rows = idx.to(device)
                loss = method.loss(x, Y[rows], label_vectors, generator, K[rows] if K is not None else None)
                if not torch.isfinite(loss):
                    raise TagrankError(f"training diverged in epoch {epoch + 1}: the loss is {loss.item()} "
                                       f"(learning rate {lr:g}); lower --lr" +
                                       (f" (the best model so far, epoch {best_epoch}, is in {out})"
                                        if best_epoch > 0 else ""))
                loss.backward()
                losses.append(loss.item())
            team.sum_gradients(trained + (groups[1]["params"] if finetune else []), len(idx) / len(batch))
            optimizer.step()
            bar.set_postfix(loss=f"{np.mean(losses):.4f}" if losses else "")
        bar.close()
        row = {"epoch": epoch + 1, "lr": lr, "train_loss": float(np.mean(losses)) if losses else float("nan")}
        if len(val_rows):
            row.update(_validate(method, source, val_rows, Y, K, label_vectors, val_generator_seed))
            score = row["val_sample_mAP"]
        else:
            score = float(epoch)  # no validation split: the last epoch is the best
        improved = score > best_score
        if improved:
            best_score, best_epoch, stale = score, epoch + 1, 0
            if team.leader:
                TaggingModel(method, dict(meta, trained=dict(meta["trained"], best_epoch=epoch + 1, validation=row)),
                             backbone_state=backbone.state_dict() if finetune else None).save(out)
        else:
            stale += 1
        row["seconds"] = round(time.time() - epoch_started, 3)
        row["best"] = improved
        history.append(row)
        if team.leader:  # one writer for the run folder
            write_text_atomic(out / HISTORY, "".join(json.dumps(h) + "\n" for h in history))
            opt_tensors, opt_meta = _optimizer_tensors(optimizer)
            backbone_tensors = {f"backbone.{k}": v for k, v in backbone.state_dict().items()} if finetune else {}
            save_tensors(out / CHECKPOINT, {**{f"model.{k}": v for k, v in method.state_dict().items()},
                                            **backbone_tensors, **opt_tensors},
                         {"epoch": epoch, "config": config.to_dict(), "labels": meta["labels"],
                          "vector_checksum": vectors.checksum, "optimizer": opt_meta,
                          "history": history, "best_score": best_score, "best_epoch": best_epoch, "stale": stale})
        if team.leader:
            log.info("epoch %d/%d  loss %.4f%s", epoch + 1, config.train.epochs, row["train_loss"],
                     f"  val loss {row['val_loss']:.4f}  val sample mAP {row['val_sample_mAP']:.4f}" if len(val_rows) else "")
        if config.train.patience and stale >= config.train.patience:
            log.info("no validation improvement in %d epochs: stopping", stale)
            break
    team.wait()  # the leader has written the best model
    model = TaggingModel.load(out)
    if config.train.half_weights:
        model.round_to_half()
        if team.leader and not len(val_rows):  # else saved with its confidence below
            model.save(out)
    if len(val_rows) and team.leader:  # confidence users can threshold, fitted on the held-out photos
        with torch.no_grad():
            relevance = _relevance(model.method.to(device), source, val_rows, label_vectors)
            kinds = model.method.tag_kinds(model.method.label_space(label_vectors)) if label_vectors is not None else None
            hubs = config.confidence
            kind_hub_weights = _kind_hub_weights(model.method, hubs)
            reference_relevance = None
            if hubs.hub_weight or any(kind_hub_weights):  # the reference photos, kept for ranking any vocabulary
                rows = _reference_rows(data, train_rows, hubs.reference_photos, config.train.seed)
                photos = source.batch(torch.from_numpy(rows), None, train=False, flip=False).cpu().half()
                model.reference_photos = photos
                x = photos.float().to(device)
                reference_relevance = model.method.relevance(model.method.scores(x, label_vectors)).cpu().numpy()
        val_y = Y[torch.from_numpy(val_rows).to(device)].cpu().numpy()
        val_known = K[torch.from_numpy(val_rows).to(device)].cpu().numpy() if K is not None else None
        model.meta["confidence"] = calibrate(relevance, val_y, meta["labels"], val_known,
                                             kinds=kinds.cpu().numpy() if kinds is not None else None,
                                             reference_relevance=reference_relevance, hub_weight=hubs.hub_weight,
                                             hub_share=hubs.hub_share,
                                             kind_hub_weights=kind_hub_weights).to_dict()
        model.method.cpu()
        model.save(out)
    team.wait()
    if not team.leader:
        model = TaggingModel.load(out)
    return TrainResult(model, history, best_epoch, time.time() - started, [data.paths[i] for i in val_rows])


def _kind_hub_weights(method, hubs: ConfidenceConfig) -> list[float]:
    """λ for each of the method's tag kinds where the generic names have their own (else none: one λ)."""
    if hubs.generic_hub_weight is None or "generic name" not in method.tag_kind_names:
        return []
    return [hubs.generic_hub_weight if kind == "generic name" else hubs.hub_weight for kind in method.tag_kind_names]


def _reference_rows(data: Dataset, train_rows: np.ndarray, count: int, seed: int) -> np.ndarray:
    """``count`` training photos drawn with ``seed``, equally many from each source of a mixture."""
    if count <= 0:
        raise TagrankError(f"config field confidence.reference_photos must be positive, got {count}")
    rng = np.random.default_rng(seed)
    sources = data.source[train_rows] if data.source is not None else np.zeros(len(train_rows), int)
    groups = [train_rows[sources == s] for s in np.unique(sources)]
    each = -(-count // len(groups))
    return np.sort(np.concatenate([rng.choice(g, min(each, len(g)), replace=False) for g in groups]))


def _draw_weights(data: Dataset, train_rows: np.ndarray, shares: list[float]) -> torch.Tensor | None:
    """Per training image, its chance of a draw: source s gets shares[s] of all draws (None: one source)."""
    if data.source is None or not shares:
        return None
    if len(shares) <= int(data.source.max()) or any(s <= 0 for s in shares):
        raise TagrankError("config field data.sources: every source needs a positive weight")
    sources = data.source[train_rows]
    counts = np.bincount(sources, minlength=len(shares)).clip(1)
    return torch.from_numpy(np.asarray(shares, np.float64)[sources] / counts[sources])


def _background_words(vectors: LabelEncoder, labels: list[str], unseen: list[str]) -> torch.Tensor:
    """Vectors of the everyday tags that are neither training nor unseen labels: words no photo constrains."""
    from tagrank.labels.vocab import DEFAULT_VOCABULARY, load_vocabulary

    taken = {vectors.normalise(t) for t in [*labels, *unseen]}
    # Words the encoder has no vector for are simply not candidates (no OOV warning: the user named none).
    words = [e for e in map(vectors.lookup, load_vocabulary(DEFAULT_VOCABULARY))
             if e.in_vocab and vectors.normalise(e.tag) not in taken]
    if not words:
        raise TagrankError(f"no background word has a vector in {vectors.source}")
    return torch.from_numpy(vectors.encode_entries(words))


def _relevance(method: Method, source, rows: np.ndarray, label_vectors) -> np.ndarray:
    """(len(rows), L) relevance of every training label for the photos ``rows`` (higher = more relevant)."""
    method.eval()
    out = []
    for start in range(0, len(rows), 512):
        x = source.batch(torch.from_numpy(rows[start:start + 512]), None, train=False, flip=False)
        out.append(method.relevance(method.scores(x, label_vectors)).cpu())
    return torch.cat(out).numpy()


@torch.no_grad()
def _validate(method: Method, source, rows: np.ndarray, Y: torch.Tensor, K: torch.Tensor | None, label_vectors,
              seed: int) -> dict:
    method.eval()
    generator = torch.Generator().manual_seed(seed)  # the same negatives every epoch: losses comparable
    losses = []
    for start in range(0, len(rows), 512):
        idx = torch.from_numpy(rows[start:start + 512])
        x, y = source.batch(idx, None, train=False, flip=False), Y[idx.to(Y.device)]
        known = K[idx.to(Y.device)] if K is not None else None
        losses.append(float(method.loss(x, y, label_vectors, generator, known)) * len(idx))
    relevance = _relevance(method, source, rows, label_vectors)
    if K is not None:  # labels of other datasets rank last: they neither help nor hurt the AP
        relevance[~K[torch.from_numpy(rows).to(K.device)].cpu().numpy()] = -np.inf
    ap = average_precision(relevance, Y[torch.from_numpy(rows).to(Y.device)].cpu().numpy(), axis=1)
    return {"val_loss": sum(losses) / len(rows), "val_sample_mAP": float(np.nanmean(ap))}


def training_data(dataset: str, root: str | Path | None, config: Config) -> tuple[Dataset, list[str]]:
    """The filtered training set and its unseen labels: one dataset, or the mixture ``config.data.sources``.

    In a mixture every source's unseen labels are held out of every source that has them, so that a
    zero-shot split stays unseen whichever dataset also names it.
    """
    from tagrank.images.datasets import merge_datasets, resolve_labels

    d = config.data
    if dataset == "mixture":
        if not d.sources:
            raise TagrankError("a mixture needs [[data.sources]] tables in the config (dataset, root, weight)")
        sources = [(s.dataset, s.root, s.unseen) for s in d.sources]
        mosaics = [s.mosaics for s in d.sources]
    else:
        if root is None:
            raise TagrankError(f"dataset {dataset} needs --root")
        if d.sources:
            raise TagrankError("the config lists [[data.sources]]: train 'mixture', or drop them")
        sources, mosaics = [(dataset, root, d.unseen)], [0]
    parts = [load_dataset(name, path, "train", keywords_from=d.keywords_from).only_present() for name, path, _ in sources]
    unseen: list[str] = []
    for part, (_, _, unseen_file) in zip(parts, sources):
        if unseen_file:
            unseen += match_labels(part.resolve_aliases(read_tag_list(unseen_file)), part.labels, "the unseen list")
    unseen = list(dict.fromkeys(unseen))
    if any(mosaics):  # of the photos of seen labels only: a zero-shot split's photos stay out of training
        from tagrank.images.features import DEFAULT_CACHE_DIR
        from tagrank.images.mosaics import mosaic_dataset

        folder = Path(config.backbone.cache_dir or DEFAULT_CACHE_DIR) / "mosaics"
        for i, count in enumerate(mosaics):
            if count:  # the unseen labels as filter_tags resolves them below
                held = [parts[i].labels.index(label) for label in resolve_labels(unseen, parts[i].labels)[0]]
                seen = parts[i].subset(np.flatnonzero(~parts[i].matrix[:, held].any(axis=1)))
                parts[i] = mosaic_dataset(seen, count, folder, config.train.seed)
    # One dataset: every excluded tag must be among its labels; a mixture: each source drops those it has.
    filtered = [filter_tags(part, d.min_images, d.drop_digits,
                            d.exclude if len(parts) == 1 else resolve_labels(d.exclude, part.labels)[0],
                            resolve_labels(unseen, part.labels)[0])
                for part in parts]
    data = filtered[0] if len(filtered) == 1 else merge_datasets(filtered)
    for part in filtered:
        log.info("%s: %d training images, %d training labels", part.name, len(part), len(part.labels))
    return data, unseen


def run_training(dataset: str, root: str | Path | None, config: Config, out: str | Path, vectors: LabelEncoder,
                 resume: bool = False, progress: bool = True) -> TrainResult:
    """Read the training data, extract/cache features and train (the CLI's ``train``).

    ``dataset`` is a reader name with its ``root``, or ``"mixture"`` for the config's ``[[data.sources]]``.
    """
    from tagrank.images.backbone import Backbone
    from tagrank.images.features import FeatureCache

    _trainable(config.method)
    check_numbers(config)  # before the features: a runtime that is not installed, say
    data, unseen = training_data(dataset, root, config)
    backbone = Backbone(config.backbone.name)
    team = join(resolve_device(config.train.device))
    if not team.leader:  # the leader fills the shared feature cache; the others then read it
        team.wait()
    cache = FeatureCache(backbone, config.backbone.cache_dir, flip=config.backbone.flip_features,
                         runtime=config.backbone.runtime)
    features = cache.get(data.paths, batch_size=config.backbone.batch_size, progress=progress and team.leader)
    if team.leader:
        team.wait()
    for problem in list(features.failed.values())[:20]:
        log.warning("skipped %s", problem)
    return train(config, data, features, vectors, out, resume, progress, backbone, unseen)
