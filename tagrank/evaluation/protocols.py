"""Evaluation protocols: which labels are ranked, which images count, and where scores come from.

Protocols (``--protocol``):

* ``conventional`` - train and test on the same label set (NUS-WIDE: the 81 concepts; otherwise all labels);
* ``zsl``          - rank only the unseen labels (NUS-WIDE default: the 81 concepts);
* ``gzsl``         - rank seen and unseen labels together (NUS-WIDE: the 925 other TagList1k tags + 81).

Images with no positive label in the evaluated set are kept (the LESA/BiAM "inclusive" protocol) unless
``filter_empty`` (SDL, DualCoOp). Test images listed in the metadata but missing on disk are left out
of model evaluation and reported. Every report has a label-prior row: labels ranked by training
frequency, the floor every method must clear.

Scores come from a trained model, ConSE, or a Parquet score file (column ``image`` plus one column per
label, higher = more relevant). Class-wise metrics use each method's declared cross-image calibration;
top-K figures always use the raw per-image ranking.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from tagrank._log import log
from tagrank.atomic import atomic_directory
from tagrank.images.datasets import Dataset, load_dataset, match_labels, read_tag_list
from tagrank.errors import TagrankError
from tagrank.evaluation.metrics import Metrics, evaluate_scores, top_k_metrics, hub_share, top_k_accuracy

PROTOCOLS = ("conventional", "zsl", "gzsl")
REPORT_MARKER = "metrics.json"


@dataclass
class Row:
    """One method's figures (``metrics`` is None when it cannot rank the protocol's labels)."""

    name: str
    metrics: Metrics | None
    calibration: str
    note: str = ""
    pr_curve: list[dict] = field(default_factory=list)  # O-P / O-R at K = 1..10


@dataclass
class EvalReport:
    dataset: str
    split: str
    protocol: str
    labels: list[str]
    unseen: list[str]
    n_images: int
    filter_empty: bool
    n_without_positive: int
    n_missing: int
    missing_sample: list[str]
    ks: tuple[int, ...]
    rows: list[Row] = field(default_factory=list)
    # --allow-seen: models evaluated zero-shot although trained on some unseen labels -> those labels
    trained_on_unseen: dict[str, list[str]] = field(default_factory=dict)

    def summary(self) -> dict:
        return {
            "dataset": self.dataset, "split": self.split, "protocol": self.protocol,
            "images": {"evaluated": self.n_images, "without_positive_label": self.n_without_positive,
                       "handling": "dropped (--filter-empty)" if self.filter_empty else "kept (inclusive protocol)",
                       "missing_on_disk": self.n_missing, "missing_sample": self.missing_sample,
                       "missing_handling": "left out of model evaluation" if self.n_missing else ""},
            "labels": {"count": len(self.labels), "unseen": self.unseen},
            "trained_on_unseen_labels": self.trained_on_unseen,
            "conventions": "see tagrank/evaluation/metrics.py: C-F1 from mean C-P/C-R; ties to the lower label index",
            "methods": [{"name": r.name, "calibration": r.calibration, "note": r.note,
                         **(r.metrics.summary() if r.metrics else {}), "pr_curve": r.pr_curve} for r in self.rows],
        }


# -- label sets ------------------------------------------------------------------------------------

def protocol_labels(data: Dataset, protocol: str, unseen: list[str]) -> list[str]:
    if protocol not in PROTOCOLS:
        raise TagrankError(f"unknown protocol {protocol!r} (choose from {', '.join(PROTOCOLS)})")
    if protocol == "conventional":
        return list(data.concepts or data.labels)
    if not unseen:
        raise TagrankError(f"protocol {protocol} needs an unseen label list (--unseen FILE)")
    if protocol == "zsl":
        return list(unseen)
    if data.concepts is not None and len(data.labels) == len(data.concepts):
        raise TagrankError("gzsl on NUS-WIDE needs the 1k-tag ground truth: "
                           "missing NUS_WID_Tags/Test_Tags1k.dat (from the NUS-WIDE download)")
    return list(data.labels)


# -- score sources ---------------------------------------------------------------------------------

def prior_scores(train: Dataset, labels: list[str], n_images: int) -> np.ndarray:
    """Every image gets the labels' training frequencies: the popularity floor."""
    where = {label: j for j, label in enumerate(train.labels)}
    freq = np.array([train.matrix[:, where[t]].mean() if t in where else 0.0 for t in labels], dtype=np.float32)
    return np.broadcast_to(freq, (n_images, len(labels))).copy()


def model_scores(tagger, features: np.ndarray, labels: list[str]) -> tuple[np.ndarray, np.ndarray, str]:
    """(raw relevance, cross-image comparable relevance, note) of ``labels`` for each feature row.

    Labels the method cannot rank (OOV for zero-shot heads, non-training labels for BCE/WARP) get the
    lowest relevance of their image and are named in the note.
    """
    method = tagger.method
    x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
    if method.zero_shot:
        embedded = tagger.vectors.embed(labels)
        rankable = [i for i, e in enumerate(embedded.entries) if e.in_vocab]
        columns = torch.from_numpy(embedded.matrix)
        note = f"{len(embedded.oov)} label(s) not in the vectors: {', '.join(embedded.oov[:10])}" if embedded.oov else ""
        compute = (lambda xb: method.scores(xb, columns))
    else:
        where = {label: j for j, label in enumerate(tagger.meta["labels"])}
        rankable = [i for i, t in enumerate(labels) if t in where]
        outputs = torch.tensor([where[labels[i]] for i in rankable], dtype=torch.long)
        missing = len(labels) - len(rankable)
        note = f"{tagger.name} ranks only its training labels: {missing} label(s) unranked" if missing else ""
        compute = (lambda xb: method.scores(xb)[:, outputs])
    if not rankable:
        return None, None, f"{tagger.name} cannot rank any of these labels (unseen in its training)"
    raw, comparable = [], []
    with torch.no_grad():
        for start in range(0, len(x), 1024):
            scores = compute(x[start:start + 1024])
            raw.append(method.relevance(scores).numpy())
            comparable.append(method.comparable(scores).numpy())
    return _fill(np.concatenate(raw), rankable, len(labels)), _fill(np.concatenate(comparable), rankable, len(labels)), note


def _fill(part: np.ndarray, rankable: list[int], n_labels: int) -> np.ndarray:
    if len(rankable) == n_labels:
        return part
    out = np.repeat(part.min(axis=1, keepdims=True) - 1.0, n_labels, axis=1).astype(np.float32)
    out[:, rankable] = part
    return out


def read_score_file(path: str | os.PathLike, ids: list[str], labels: list[str]) -> np.ndarray:
    """Scores from Parquet: column ``image`` (ids as the dataset names them) and one column per label."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise TagrankError(f"score file not found: {path}")
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:
        raise TagrankError(f"cannot read score file {path}: {exc}") from None
    if "image" not in frame.columns:
        raise TagrankError(f"score file {path} has no 'image' column")
    missing_labels = [t for t in labels if t not in frame.columns]
    if missing_labels:
        raise TagrankError(f"score file {path} lacks {len(missing_labels)} label column(s): "
                           f"{', '.join(missing_labels[:10])}")
    frame = frame.set_index(frame["image"].astype(str).str.replace("\\", "/", regex=False))
    if frame.index.has_duplicates:
        raise TagrankError(f"score file {path} lists image {frame.index[frame.index.duplicated()][0]!r} twice")
    unknown = frame.index.difference(ids)
    absent = [i for i in ids if i not in frame.index]
    if len(unknown) or absent:
        raise TagrankError(f"score file {path} does not match the test images: {len(absent)} missing "
                           f"(e.g. {absent[:2]}), {len(unknown)} unknown (e.g. {list(unknown[:2])})")
    chosen = frame.loc[ids, labels]
    for label in labels:
        if not (pd.api.types.is_numeric_dtype(chosen[label]) and not pd.api.types.is_bool_dtype(chosen[label])):
            sample = chosen[label].iloc[0] if len(chosen) else None
            raise TagrankError(f"score file {path}: column {label!r} is not numeric "
                               f"({chosen[label].dtype}, e.g. {sample!r})")
    scores = chosen.to_numpy(dtype=np.float32)
    if np.isinf(scores).any():
        bad = [labels[j] for j in np.flatnonzero(np.isinf(scores).any(axis=0))]
        log.warning("score file %s has infinite scores in %d column(s) (%s): they rank first or last, ties "
                    "among them in label order", path, len(bad), ", ".join(map(repr, bad[:5])))
    if np.isnan(scores).any():
        row = int(np.flatnonzero(np.isnan(scores).any(axis=1))[0])
        raise TagrankError(f"score file {path} has NaN scores (first for image {ids[row]!r})")
    return scores


def write_score_file(path: str | os.PathLike, ids: list[str], labels: list[str], scores: np.ndarray) -> None:
    """The format :func:`read_score_file` reads (used for the prior baseline and by other systems)."""
    import pandas as pd

    from tagrank.atomic import atomic_file

    frame = pd.DataFrame(scores, columns=labels)
    frame.insert(0, "image", ids)
    with atomic_file(path) as f:
        frame.to_parquet(f, index=False)


# -- the run ---------------------------------------------------------------------------------------

def _row(name: str, raw: np.ndarray, comparable: np.ndarray, truth: np.ndarray, labels: list[str], ks,
         calibration: str, note: str = "") -> Row:
    metrics = evaluate_scores(raw, truth, labels, ks, class_scores=comparable)
    curve = []
    for k in range(1, min(10, len(labels)) + 1):
        t = metrics.top_k[k] if k in metrics.top_k else top_k_metrics(raw, truth, k)
        curve.append({"k": k, "O-P": t.OP, "O-R": t.OR, "C-P": t.CP, "C-R": t.CR})
    return Row(name, metrics, calibration, note, curve)


def evaluate(dataset: str, root: str | os.PathLike, models: list[str | os.PathLike] = (), method: str | None = None,
             scores: str | os.PathLike | None = None, protocol: str = "conventional", ks=(3, 5),
             unseen: str | os.PathLike | None = None, split: str = "test", filter_empty: bool = False,
             vectors: str | None = None, cache_dir: str | None = None, progress: bool = True,
             allow_seen: bool = False, runtime: str = "torch") -> EvalReport:
    """Evaluate models / ConSE / a score file on one protocol; the prior baseline row always comes first.
    ``runtime``: where the CNN extracts the photos' features (tagrank.images.features.FeatureCache).

    Zero-shot protocols refuse a model trained on any of the unseen labels (its numbers would not be
    zero-shot) unless ``allow_seen``, which the report then states.
    """
    data = load_dataset(dataset, root, split)
    unseen_tags = match_labels(data.resolve_aliases(read_tag_list(unseen)), data.labels, "the unseen list") if unseen else \
        (list(data.concepts) if data.concepts and protocol != "conventional" else [])
    labels = protocol_labels(data, protocol, unseen_tags)
    if not models and method is None and scores is None:
        raise TagrankError("nothing to evaluate: give --model RUN, --method conse or --scores FILE")
    bad_k = [k for k in ks if not 1 <= k <= len(labels)]
    if bad_k:
        raise TagrankError(f"K = {bad_k[0]} is out of range for the {len(labels)} labels of this protocol")
    data = data.select_labels(labels)
    missing: list[str] = []
    needs_images = bool(models) or method is not None
    if needs_images:
        present = np.array([os.path.isfile(p) for p in data.paths], dtype=bool)
        missing = [i for i, ok in zip(data.ids, present) if not ok]
        if missing:
            log.warning("%d of %d test images are not on disk (e.g. %s); they are left out", len(missing), len(data),
                        ", ".join(missing[:3]))
            if scores is not None:
                raise TagrankError("some test images are missing on disk: evaluate --scores separately from models")
            data = data.subset(np.flatnonzero(present))
        if len(data) == 0:
            raise TagrankError(f"none of the {dataset} {split} images is on disk under {root}")
    has_positive = data.matrix.any(axis=1)  # counted over the photos evaluated
    n_without = int((~has_positive).sum())
    if filter_empty:
        data = data.subset(np.flatnonzero(has_positive))
        if len(data) == 0:
            raise TagrankError(f"no {dataset} {split} image has a positive label of this protocol")
    report = EvalReport(dataset, split, protocol, labels, unseen_tags, len(data), filter_empty, n_without,
                        len(missing), missing[:5], tuple(ks))
    try:
        train = load_dataset(dataset, root, "train")
    except TagrankError:
        train = data  # no training split in this layout: frequencies of the evaluated images
        log.warning("no training split found: the prior row uses test-set label frequencies")
    prior = prior_scores(train, labels, len(data))
    report.rows.append(_row("prior", prior, prior, data.matrix, labels, ks, "none (the same scores for every image)",
                            "labels ranked by training frequency"))
    if scores is not None:
        given = read_score_file(scores, data.ids, labels)
        report.rows.append(_row(f"scores:{Path(scores).name}", given, given, data.matrix, labels, ks, "none (as given)"))
    if needs_images:
        _evaluate_models(report, data, models, method, vectors, cache_dir, progress, allow_seen, runtime)
    return report


def _evaluate_models(report: EvalReport, data: Dataset, models, method, vectors, cache_dir, progress,
                     allow_seen: bool = False, runtime: str = "torch") -> None:
    from tagrank.images.features import FeatureCache
    from tagrank.tagger import Tagger

    taggers = [(Path(m).name, Tagger.load(m, vectors=vectors)) for m in models]
    if report.protocol != "conventional":
        unseen = {t.casefold() for t in report.unseen}
        for (name, tagger), directory in zip(taggers, models):
            seen = sorted(t for t in tagger.meta.get("labels", []) if t.casefold() in unseen)
            if seen and not allow_seen:
                raise TagrankError(
                    f"model {directory} was trained on {len(seen)} of the unseen labels ({', '.join(seen[:5])}"
                    f"{' ...' if len(seen) > 5 else ''}): its {report.protocol} numbers would not be zero-shot "
                    "(train it with this --unseen list, or give --allow-seen and the report says so)")
            if seen:
                report.trained_on_unseen[name] = seen
    if method is not None:
        taggers.append((method, Tagger.load(None, method, vectors)))
    features_by_backbone = {}
    for name, tagger in taggers:
        signature = tagger.backbone.signature
        if signature not in features_by_backbone:
            got = FeatureCache(tagger.backbone, cache_dir, runtime=runtime).get(data.paths, progress=progress)
            if got.failed:
                raise TagrankError(f"{len(got.failed)} test image(s) cannot be decoded, e.g. "
                                   f"{next(iter(got.failed.values()))}")
            features_by_backbone[signature] = got.features
        raw, comparable, note = model_scores(tagger, features_by_backbone[signature], report.labels)
        label = f"{name} ({tagger.name})" if name != tagger.name else name
        if raw is None:
            report.rows.append(Row(label, None, tagger.method.calibration, note))
        else:
            report.rows.append(_row(label, raw, comparable, data.matrix, report.labels, report.ks,
                                    tagger.method.calibration, note))


# -- output ----------------------------------------------------------------------------------------

def format_table(report: EvalReport) -> str:
    """The paper's Tables 3-4 layout (+ mAP, N+), one block of rows per method."""
    head = (f"{report.dataset} {report.split} · protocol {report.protocol} · {len(report.labels)} labels · "
            f"{report.n_images} images ({report.n_without_positive} without a positive label: "
            f"{'dropped' if report.filter_empty else 'kept'})")
    if report.n_missing:
        head += f" · {report.n_missing} missing on disk, left out"
    for name, seen in report.trained_on_unseen.items():
        head += f"\nNOT ZERO-SHOT (--allow-seen): {name} was trained on {len(seen)} of the unseen labels"
    width = max([len(r.name) for r in report.rows] + [6])
    lines = [head, f"{'method':<{width}}  {'K':>2}  {'C-P':>5} {'C-R':>5} {'C-F1':>5}  {'O-P':>5} {'O-R':>5} "
             f"{'O-F1':>5}  {'mAP':>5}  {'N+':>4}"]
    for row in report.rows:
        if row.metrics is None:
            lines.append(f"{row.name:<{width}}  {'':>2}  n/a: {row.note}")
            continue
        for i, k in enumerate(report.ks):
            t = row.metrics.top_k[k]
            m = f"{100 * row.metrics.mAP:5.1f}" if i == 0 else " " * 5
            lines.append(f"{row.name if i == 0 else '':<{width}}  {k:>2}  {100 * t.CP:5.1f} {100 * t.CR:5.1f} "
                         f"{100 * t.CF1:5.1f}  {100 * t.OP:5.1f} {100 * t.OR:5.1f} {100 * t.OF1:5.1f}  {m}  {t.n_plus:>4}")
    notes = [f"{r.name}: {r.note}" for r in report.rows if r.note and r.metrics is not None]
    lines.append("class-wise calibration: " + "; ".join(f"{r.name}: {r.calibration}" for r in report.rows))
    lines += notes
    return "\n".join(lines)


def write_report(report: EvalReport, directory: str | os.PathLike) -> Path:
    """REPORT_DIR: metrics.json, per_class.csv and the plots, written atomically."""
    import pandas as pd

    with atomic_directory(directory, REPORT_MARKER) as tmp:
        (tmp / REPORT_MARKER).write_text(json.dumps(report.summary(), indent=2) + "\n", encoding="utf-8")
        frames = []
        for row in report.rows:
            if row.metrics is None:
                continue
            m = row.metrics
            columns = {"method": row.name, "label": report.labels, "n_positive": m.n_positive, "AP": m.class_ap}
            for k, t in m.top_k.items():
                columns[f"P@{k}"] = t.class_precision
                columns[f"R@{k}"] = t.class_recall
            frames.append(pd.DataFrame(columns))
        pd.concat(frames).to_csv(tmp / "per_class.csv", index=False)
        _plots(report, tmp)
    return Path(directory)


def _plots(report: EvalReport, directory: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report.rows if r.metrics is not None]
    best = max(rows, key=lambda r: np.nan_to_num(r.metrics.mAP, nan=-1))
    ap = best.metrics.class_ap
    order = np.argsort(-np.nan_to_num(ap, nan=-1))
    shown = order[: min(60, len(order))]
    fig, ax = plt.subplots(figsize=(max(6, 0.18 * len(shown) + 2), 4))
    ax.bar(range(len(shown)), np.nan_to_num(ap[shown]), color="tab:blue")
    ax.set_xticks(range(len(shown)), [report.labels[i] for i in shown], rotation=90, fontsize=7)
    ax.set_ylabel("average precision")
    ax.set_title(f"Per-class AP, {best.name} ({report.protocol}; top {len(shown)} of {len(ap)} classes)")
    fig.tight_layout()
    fig.savefig(directory / "per_class_ap.png", dpi=120)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 4))
    for row in rows:
        ax.plot([p["O-R"] for p in row.pr_curve], [p["O-P"] for p in row.pr_curve], marker="o", label=row.name)
    ax.set_xlabel("overall recall (O-R)")
    ax.set_ylabel("overall precision (O-P)")
    ax.set_title(f"Precision-recall at K = 1..10 ({report.protocol})")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(directory / "pr_at_k.png", dpi=120)
    plt.close(fig)


# -- open-world measures ---------------------------------------------------------------------------

def _features(tagger, paths: list[str], cache_dir, progress: bool,
              runtime: str = "torch") -> tuple[list[str], np.ndarray]:
    from tagrank.images.features import FeatureCache

    got = FeatureCache(tagger.backbone, cache_dir, runtime=runtime).get(paths, progress=progress)
    return got.paths, got.features


def label_accuracy(tagger, data: Dataset, labels: list[str], photos_of: list[str] | None = None, ks=(1, 5),
                   cache_dir: str | None = None, progress: bool = False, runtime: str = "torch") -> dict[int, float]:
    """Top-k accuracy of ranking ``labels`` for the single-label photos of the classes ``photos_of``
    (default: ``labels``), each of which must be among ``labels``.

    ImageNet-style data: 'ZSL' ranks the unseen classes' names for their photos, 'GZSL' every class
    name for the same photos.
    """
    chosen = set(photos_of if photos_of is not None else labels)
    if not chosen <= set(labels):
        raise TagrankError(f"photos of {sorted(chosen - set(labels))[:3]} cannot be scored: not among the ranked labels")
    single = data.matrix.sum(axis=1) == 1
    of_chosen = data.matrix[:, [j for j, t in enumerate(data.labels) if t in chosen]].any(axis=1)
    data = data.subset(np.flatnonzero(single & of_chosen)).select_labels(labels)
    if len(data) == 0:
        raise TagrankError("no photo has exactly one of these labels")
    paths, features = _features(tagger, data.paths, cache_dir, progress, runtime)
    row = {p: i for i, p in enumerate(data.paths)}
    truth = data.matrix[[row[p] for p in paths]].argmax(axis=1)
    raw, _, _ = model_scores(tagger, features, labels)
    return top_k_accuracy(raw, truth, ks)


def vocabulary_hub_share(tagger, paths: list[str], vocab=None, top: int = 5, hubs: int = 10,
                         cache_dir: str | None = None, progress: bool = False,
                         runtime: str = "torch") -> tuple[float, list[tuple[str, int]]]:
    """Share of all top-``top`` slots that the ``hubs`` most frequent tags take over ``paths`` (default vocabulary)."""
    _, features = _features(tagger, paths, cache_dir, progress, runtime)
    prepared = tagger.prepare(vocab)
    where = {t: i for i, t in enumerate(prepared.tags)}
    ranked = []
    for start in range(0, len(features), 256):
        for tags in tagger.rank_features(features[start:start + 256], prepared, top):
            ranked.append([where[t["tag"]] for t in tags])
    share, counts = hub_share(np.array(ranked), hubs)
    return share, [(prepared.tags[i], n) for i, n in counts]


def photo_metrics(tagger, data: Dataset, ks=(5,), cache_dir: str | None = None, progress: bool = False,
                  runtime: str = "torch") -> Metrics:
    """The benchmark's metrics of ranking the labels that ``data``'s photos have (a validation split, say)."""
    present = data.matrix.any(axis=0)
    data = data.select_labels([t for t, keep in zip(data.labels, present) if keep])
    paths, features = _features(tagger, data.paths, cache_dir, progress, runtime)
    row = {p: i for i, p in enumerate(data.paths)}
    raw, comparable, _ = model_scores(tagger, features, data.labels)
    return evaluate_scores(raw, data.matrix[[row[p] for p in paths]], data.labels, ks, class_scores=comparable)
