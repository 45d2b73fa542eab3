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
from tagrank.atomic import write_text_atomic
from tagrank.config import Config
from tagrank.datasets import Dataset, filter_tags, load_dataset, read_tag_list
from tagrank.errors import TagrankError
from tagrank.features import Features
from tagrank.methods import Method, get_method
from tagrank.metrics import average_precision
from tagrank.model import TaggingModel, load_tensors, save_tensors
from tagrank.vectors import WordVectors

CHECKPOINT = "checkpoint.safetensors"
HISTORY = "train.jsonl"


@dataclass
class TrainResult:
    model: TaggingModel
    history: list[dict]
    best_epoch: int
    seconds: float


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


def train(config: Config, data: Dataset, features: Features, vectors: WordVectors, out: str | Path,
          resume: bool = False, progress: bool = True, backbone_signature: str = "") -> TrainResult:
    """Train ``config.method`` on ``data`` (training labels already filtered) with cached ``features``."""
    started = time.time()
    out = Path(out)
    method_cls = _trainable(config.method)
    if not resume and ((out / CHECKPOINT).exists() or (out / "model.json").exists()):
        raise TagrankError(f"{out} already holds a training run: pass --resume to continue it, or choose another --out")

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
    rows = [row_of[p] for p in data.paths]
    X = torch.from_numpy(features.features[rows])
    X_flip = torch.from_numpy(features.flipped[rows]) if features.flipped is not None else None
    Y = torch.from_numpy(data.matrix)
    train_rows, val_rows = _split(len(data), config.train.val_fraction, config.train.seed)

    torch.manual_seed(config.train.seed)
    method: Method = method_cls(config.method_options, X.shape[1], vectors.dim, len(data.labels))
    method.prepare(Y[train_rows])
    optimizer = torch.optim.Adam(method.parameters(), lr=config.train.lr, weight_decay=config.train.weight_decay)
    meta = {
        "method": config.method, "options": config.to_dict()["method"], "config": config.to_dict(),
        "feature_dim": int(X.shape[1]), "dim": vectors.dim, "labels": list(data.labels),
        "vector_source": vectors.source, "vector_checksum": vectors.checksum,
        "backbone": {"name": config.backbone.name, "signature": backbone_signature},
        "unseen": list(getattr(data, "unseen", [])),
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
        if _without_epochs(state.get("config")) != _without_epochs(config.to_dict()) or state.get("labels") != meta["labels"]:
            raise TagrankError(f"{out / CHECKPOINT} was made with another config or label set; cannot resume")
        method.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        _restore_optimizer(optimizer, tensors, state["optimizer"])
        history, start_epoch = state["history"], state["epoch"] + 1
        best_score, best_epoch, stale = state["best_score"], state["best_epoch"], state["stale"]
        log.info("resuming %s from epoch %d", out, start_epoch + 1)
    elif resume:
        log.info("nothing to resume in %s: starting a new run", out)
    out.mkdir(parents=True, exist_ok=True)

    val_generator_seed = _epoch_seed(config.train.seed, -1)
    if start_epoch == 0 and len(val_rows):  # the untrained model's figures: where validation starts from
        history = [{"epoch": 0, **_validate(method, X[val_rows], Y[val_rows], label_vectors, val_generator_seed)}]
    for epoch in range(start_epoch, config.train.epochs):
        epoch_started = time.time()
        lr = learning_rate(config, epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        torch.manual_seed(_epoch_seed(config.train.seed, epoch))  # dropout
        generator = torch.Generator().manual_seed(_epoch_seed(config.train.seed, epoch))
        order = torch.from_numpy(train_rows)[torch.randperm(len(train_rows), generator=generator)]
        method.train()
        losses = []
        batches = range(0, len(order), config.train.batch_size)
        bar = progress_bar(batches, progress, desc=f"{config.method} epoch {epoch + 1}/{config.train.epochs}", unit="batch")
        for start in bar:
            idx = order[start:start + config.train.batch_size]
            x = X[idx]
            if config.train.flip and X_flip is not None:
                mirrored = torch.rand(len(idx), generator=generator) < 0.5
                x = torch.where(mirrored[:, None], X_flip[idx], x)
            loss = method.loss(x, Y[idx], label_vectors, generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses):.4f}")
        bar.close()
        row = {"epoch": epoch + 1, "lr": lr, "train_loss": float(np.mean(losses)) if losses else float("nan")}
        if len(val_rows):
            row.update(_validate(method, X[val_rows], Y[val_rows], label_vectors, val_generator_seed))
            score = row["val_sample_mAP"]
        else:
            score = float(epoch)  # no validation split: the last epoch is the best
        improved = score > best_score
        if improved:
            best_score, best_epoch, stale = score, epoch + 1, 0
            TaggingModel(method, dict(meta, trained=dict(meta["trained"], best_epoch=epoch + 1, validation=row))).save(out)
        else:
            stale += 1
        row["seconds"] = round(time.time() - epoch_started, 3)
        row["best"] = improved
        history.append(row)
        write_text_atomic(out / HISTORY, "".join(json.dumps(h) + "\n" for h in history))
        opt_tensors, opt_meta = _optimizer_tensors(optimizer)
        save_tensors(out / CHECKPOINT, {**{f"model.{k}": v for k, v in method.state_dict().items()}, **opt_tensors},
                     {"epoch": epoch, "config": config.to_dict(), "labels": meta["labels"], "optimizer": opt_meta,
                      "history": history, "best_score": best_score, "best_epoch": best_epoch, "stale": stale})
        log.info("epoch %d/%d  loss %.4f%s", epoch + 1, config.train.epochs, row["train_loss"],
                 f"  val loss {row['val_loss']:.4f}  val sample mAP {row['val_sample_mAP']:.4f}" if len(val_rows) else "")
        if config.train.patience and stale >= config.train.patience:
            log.info("no validation improvement in %d epochs: stopping", stale)
            break
    return TrainResult(TaggingModel.load(out), history, best_epoch, time.time() - started)


@torch.no_grad()
def _validate(method: Method, X: torch.Tensor, Y: torch.Tensor, label_vectors, seed: int) -> dict:
    method.eval()
    generator = torch.Generator().manual_seed(seed)  # the same negatives every epoch: losses comparable
    losses, scores = [], []
    for start in range(0, len(X), 512):
        x, y = X[start:start + 512], Y[start:start + 512]
        losses.append(float(method.loss(x, y, label_vectors, generator)) * len(x))
        scores.append(method.relevance(method.scores(x, label_vectors)))
    relevance = torch.cat(scores).numpy()
    ap = average_precision(relevance, Y.numpy(), axis=1)
    return {"val_loss": sum(losses) / len(X), "val_sample_mAP": float(np.nanmean(ap))}


def run_training(dataset: str, root: str | Path, config: Config, out: str | Path, vectors: WordVectors,
                 resume: bool = False, progress: bool = True) -> TrainResult:
    """Read ``dataset`` at ``root``, filter its tags, extract/cache features and train (the CLI's ``train``)."""
    from tagrank.backbone import Backbone
    from tagrank.features import FeatureCache

    _trainable(config.method)
    data = load_dataset(dataset, root, "train").only_present()
    unseen = read_tag_list(config.data.unseen) if config.data.unseen else []
    filtered = filter_tags(data, config.data.min_images, config.data.drop_digits, config.data.exclude, unseen)
    filtered.unseen = sorted(set(data.labels) - set(filtered.labels))  # recorded in model.json
    log.info("%s: %d training images, %d training labels (%d held out or filtered)", dataset, len(filtered),
             len(filtered.labels), len(filtered.unseen))
    backbone = Backbone(config.backbone.name)
    cache = FeatureCache(backbone, config.backbone.cache_dir, flip=config.backbone.flip_features)
    features = cache.get(filtered.paths, batch_size=config.backbone.batch_size, progress=progress)
    for problem in list(features.failed.values())[:20]:
        log.warning("skipped %s", problem)
    return train(config, filtered, features, vectors, out, resume, progress, backbone.signature)
