"""The ``tagrank`` command: a thin layer over the Python API.

Every command parses its options, calls one API function and prints. Errors a user can cause
(:class:`TagrankError`, bad options) become one ``error: ...`` line on stderr and exit status 2.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Optional

import typer

from tagrank.errors import SystemFailure, TagrankError, os_reason
from tagrank.output import printable

app = typer.Typer(help="Rank any vocabulary of tags for a photo.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
index_app = typer.Typer(help="Build and inspect FAISS label indexes.", no_args_is_help=True)
app.add_typer(index_app, name="index")

# click's UsageError, whether typer vendors click (>= 0.24) or uses it (older): BadParameter's base.
_UsageError = typer.BadParameter.__base__

VectorsOpt = typer.Option(None, "--vectors", help="label encoder: wordllama, minilm, glove-6b-50d, names joined by + "
                                                  "(wordllama+minilm), or a word2vec/GloVe file")
BackendOpt = typer.Option("auto", "--backend", help="where the CNN runs: torch, openvino or onnxruntime (about 3× "
                                                   "and 2.5× as fast on a CPU; pip install 'tagrank[openvino]' or "
                                                   "'tagrank[onnx]'), or auto (the fastest installed, for 64 "
                                                   "photos or more)")
SearchOpt = typer.Option("auto", "--search", help="exact (torch scan), faiss (exact, in FAISS; GPU with faiss-gpu), "
                                                 "approx (the first photos exact until their top tags repeat, then "
                                                 "only those frequent tags, kept in the cache folder for the next "
                                                 "run), auto (approx from 1,000,000 tags, faiss on "
                                                 "a GPU, else exact)")


def _positive(name: str, value: int) -> int:
    if value <= 0:
        raise TagrankError(f"{name} must be a positive number, got {value}")
    return value


# -- label space -----------------------------------------------------------------------------------

@app.command()
def similar(
    tag: str = typer.Argument(..., help="the tag to find neighbours of"),
    index: Optional[Path] = typer.Option(None, "--index", help="label index directory (default: a word-vector file's whole "
                                                           "vocabulary, or the everyday vocabulary)"),
    vectors: Optional[str] = VectorsOpt,
    top: int = typer.Option(10, "--top", help="how many neighbours"),
) -> None:
    """Nearest tags to TAG by cosine similarity, through FAISS."""
    from tagrank.labels.encoders import load_encoder
    from tagrank.labels.index import LabelIndex

    _positive("--top", top)
    if index is not None:
        manifest = LabelIndex.read_manifest(index)
        word_vectors = load_encoder(vectors if vectors is not None else manifest["vector_source"])
        label_index = LabelIndex.load(index, word_vectors)
    else:
        from tagrank.labels.vocab import DEFAULT_VOCABULARY, load_vocabulary

        word_vectors = load_encoder(vectors)
        label_index = LabelIndex.from_vectors(word_vectors) if hasattr(word_vectors, "keyed") else \
            LabelIndex.build(load_vocabulary(DEFAULT_VOCABULARY), word_vectors)  # a subword encoder has no word list
    for rank, (name, score) in enumerate(label_index.similar(tag, top, word_vectors), 1):
        typer.echo(f"{rank:>3}  {score:6.3f}  {name}")


@index_app.command("build")
def index_build(
    vocab: str = typer.Option(..., "--vocab", help="vocabulary: a named one (everyday, nuswide1k, ...), one tag per "
                                                "line, or CSV/Parquet with a 'tag' column"),
    out: Path = typer.Option(..., "--out", help="directory to write labels.faiss, labels.parquet, manifest.json"),
    vectors: Optional[str] = VectorsOpt,
    strict: bool = typer.Option(False, "--strict", help="fail if any tag is not in the vectors"),
    clusters: Optional[int] = typer.Option(None, "--clusters", help="cluster the index (IVF) for fast nearest-tag "
                                                                   "search: 0 = flat (default: clustered from "
                                                                   "1,000,000 tags)"),
) -> None:
    """Embed a vocabulary and write its FAISS label index."""
    from tagrank.atomic import check_output_dir
    from tagrank.labels.encoders import load_encoder
    from tagrank.labels.index import MANIFEST, LabelIndex
    from tagrank.labels.vocab import load_vocabulary

    if clusters is not None and clusters < 0:
        raise TagrankError(f"--clusters must be 0 (a flat index) or more, got {clusters}")
    check_output_dir(out, MANIFEST)
    tags = load_vocabulary(vocab)
    label_index = LabelIndex.build(tags, load_encoder(vectors), strict=strict, clusters=clusters)
    label_index.save(out)
    typer.echo(f"wrote {out}: {len(label_index)} of {len(tags)} tags indexed "
               f"({label_index.dim}-d, {label_index.source}, {label_index.manifest['index_type']})")


@index_app.command("info")
def index_info(directory: Path = typer.Argument(..., help="label index directory")) -> None:
    """Print a label index's manifest, after verifying its files' checksums."""
    from tagrank.labels.index import LabelIndex

    manifest = LabelIndex.verify(directory)
    typer.echo(json.dumps(manifest, indent=2, ensure_ascii=False))
    typer.echo(f"checksums of {', '.join(manifest['files'])}: verified", err=True)  # stdout stays JSON


# -- training --------------------------------------------------------------------------------------

def _library_recipe(method: str | None):
    """A person's library trains by the embedded default model's recipe (its recorded config, without its
    datasets), so the model ranks their keywords and, like the default, any other tag."""
    from tagrank.config import config_from_dict
    from tagrank.tagger import default_description

    recorded = default_description()["config"]
    recorded["data"] = {k: v for k, v in recorded.get("data", {}).items() if k != "sources"}
    return config_from_dict(recorded, method, "the default model's recipe")


@app.command()
def train(
    dataset: str = typer.Argument(..., help="dataset layout: csv, folder, corel5k, nuswide, imagefolder, tinyimagenet, "
                                            "library (photos with keywords); or 'mixture' for the config's "
                                            "[[data.sources]]"),
    root: Optional[Path] = typer.Option(None, "--root", help="dataset root (for csv: the table or its folder)"),
    out: Path = typer.Option(..., "--out", help="run directory: model.safetensors, model.json, train.jsonl"),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML config (configs/*.toml); flags override it"),
    method: Optional[str] = typer.Option(None, "--method", help="transform, fast0tag, warp or bce"),
    unseen: Optional[Path] = typer.Option(None, "--unseen", help="tags held out from training (zero-shot split)"),
    vectors: Optional[str] = VectorsOpt,
    epochs: Optional[int] = typer.Option(None, "--epochs"),
    lr: Optional[float] = typer.Option(None, "--lr"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size"),
    seed: Optional[int] = typer.Option(None, "--seed"),
    k: Optional[int] = typer.Option(None, "--k", help="rows of A (transform)"),
    backbone: Optional[str] = typer.Option(None, "--backbone", help="lite0 or lite2"),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="feature cache (default ~/.cache/tagrank)"),
    resume: bool = typer.Option(False, "--resume", help="continue an interrupted run from its last checkpoint"),
    finetune: bool = typer.Option(False, "--finetune", help="train the CNN end to end too (slow on CPU; for GPUs)"),
    device: Optional[str] = typer.Option(None, "--device", help="auto (default), cpu, cuda, cuda:1 ..."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
    keywords_from: Optional[str] = typer.Option(None, "--keywords-from",
                                                help="library: any (default), sidecar, xmp or iptc"),
) -> None:
    """Train a tagging method on a dataset's training split (a library: on its photos' keywords)."""
    from tagrank.atomic import check_output_dir
    from tagrank.config import load_config, override
    from tagrank.labels.encoders import load_encoder
    from tagrank.images.features import DEFAULT_CACHE_DIR
    from tagrank.training.trainer import run_training

    cfg = _library_recipe(method) if dataset == "library" and config is None else load_config(config, method)
    override(cfg.data, keywords_from=keywords_from)
    override(cfg.train, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, device=device)
    if finetune:
        cfg.backbone.finetune = True
    override(cfg.data, unseen=str(unseen) if unseen else None)
    override(cfg.backbone, name=backbone, cache_dir=str(cache_dir) if cache_dir else None)
    if k is not None:
        if not hasattr(cfg.method_options, "k"):
            raise TagrankError(f"--k applies to the transform method, not {cfg.method}")
        cfg.method_options.k = _positive("--k", k)
    for name, value in (("--epochs", cfg.train.epochs), ("--batch-size", cfg.train.batch_size)):
        _positive(name, value)
    check_output_dir(out)  # before any feature is extracted
    check_output_dir(cfg.backbone.cache_dir or DEFAULT_CACHE_DIR)
    result = run_training(dataset, root, cfg, out, load_encoder(vectors), resume=resume, progress=progress)
    best = next((h for h in result.history if h.get("epoch") == result.best_epoch), {})
    figures = "  ".join(f"{k} {v:.4f}" for k, v in best.items() if k.startswith("val_"))
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, one process reports
        typer.echo(f"trained {cfg.method} in {result.seconds:.1f}s: best epoch {result.best_epoch} {figures}; wrote {out}")


# -- ranking ---------------------------------------------------------------------------------------

@app.command()
def rank(
    paths: list[str] = typer.Argument(..., help="image files, directories (recursed) or globs"),
    vocab: Optional[str] = typer.Option(None, "--vocab", help="tags to rank: a file, or everyday, nuswide1k, nuswide81, "
                                                            "corel5k (default: the model's vocabulary)"),
    index: Optional[Path] = typer.Option(None, "--index", help="a label index built by 'tagrank index build'"),
    model: Optional[Path] = typer.Option(None, "--model", help="run directory from 'tagrank train' (default: embedded model)"),
    method: Optional[str] = typer.Option(None, "--method", help="'conse' for the training-free baseline"),
    vectors: Optional[str] = VectorsOpt,
    top: int = typer.Option(5, "--top", help="tags per image"),
    threshold: Optional[str] = typer.Option(None, "--threshold", help="keep only tags with at least this confidence "
                                                                   "(0-1); at most --top of them"),
    fmt: str = typer.Option("table", "--format", help="table, json, jsonl, csv or parquet"),
    out: Optional[Path] = typer.Option(None, "--out", help="write to this file instead of stdout"),
    explain: bool = typer.Option(False, "--explain", help="show how many rows of A vote for each tag"),
    search: str = SearchOpt,
    backend: str = BackendOpt,
    batch_size: int = typer.Option(32, "--batch-size"),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
    write_keywords: Optional[str] = typer.Option(None, "--write-keywords",
                                                 help="also write the tags as XMP keywords: xmp (NAME.EXT.xmp "
                                                      "sidecars), lightroom (NAME.xmp) or embed (inside the photo)"),
    force: bool = typer.Option(False, "--force", help="with --write-keywords: redo photos already tagged the same way"),
) -> None:
    """Rank a vocabulary of tags for each photo; smaller distance (transform) = more relevant."""
    from tagrank.atomic import check_writable
    from tagrank.images.photos import find_images
    from tagrank.labels.index import LabelIndex
    from tagrank.output import FORMATS, write_results
    from tagrank.images.runtimes import check_runtime
    from tagrank.ranking.search import check_search
    from tagrank.tagger import Tagger
    from tagrank.labels.vocab import load_vocabulary

    # Everything that can be checked is checked before the first photo is decoded.
    _positive("--top", top)
    _positive("--batch-size", batch_size)
    cut = _number("--threshold", threshold)
    if fmt not in FORMATS:
        raise TagrankError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if vocab is not None and index is not None:
        raise TagrankError("give --vocab or --index, not both")
    if fmt == "parquet" and out is None:
        raise TagrankError("--format parquet needs --out FILE")
    check_search(search)
    check_runtime(backend)
    if out is not None:
        check_writable(out)
    if write_keywords is not None or force:
        from tagrank import keywords

        keywords.check_options(write_keywords, force)
    images, problems = find_images(paths)
    if not images:
        raise TagrankError("; ".join(problems) if problems else "no images given")
    tagger = Tagger.load(model, method, vectors, search)
    tags = LabelIndex.load(index, tagger.vectors) if index is not None else \
        (load_vocabulary(vocab) if vocab is not None else None)
    tagger.prepare(tags)
    failed, written, skipped = [], [], []
    if write_keywords is not None:  # a re-run over a grown library ranks only the photos not yet tagged this way
        made_with = keywords.run_stamp(model, method, index or vocab, top, cut)
        if not force:
            skipped = [p for p in images if keywords.already_tagged(p, write_keywords, made_with)]
            images = [p for p in images if p not in set(skipped)]

    def records():
        for record in tagger.iter_rank(images, tags, top, cut, explain, batch_size, progress and len(images) > 1,
                                       backend):
            if "error" in record:
                failed.append(record["error"])
            elif write_keywords is not None:
                try:
                    keywords.write_keywords(record["image"], record["tags"], write_keywords, made_with, force=True)
                    written.append(record["image"])
                except TagrankError as exc:  # this photo's keywords; the others' are still written
                    failed.append(str(exc))
            yield record

    write_results(records(), fmt, out, tagger.method.score_name)
    if write_keywords is not None:
        typer.echo(f"keywords written for {len(written)} photo(s)" +
                   (f"; {len(skipped)} already tagged the same way, skipped (--force redoes them)" if skipped else ""),
                   err=True)
    for problem in problems + failed:
        typer.echo(f"error: {printable(problem)}", err=True)
    if problems or failed:
        typer.echo(f"error: {len(problems) + len(failed)} input(s) failed; {len(images) - len(failed)} image(s) tagged",
                   err=True)
        raise typer.Exit(1)


def _number(name: str, value: Optional[str]) -> Optional[float]:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        raise TagrankError(f"{name} must be a number, got {value!r}") from None


@app.command()
def batch(
    inputs: list[str] = typer.Argument(..., help="folders, globs, photos, or a Parquet/CSV list with a 'path' column"),
    out: Path = typer.Option(..., "--out", help="folder of Parquet shards: tags-NNNNN.parquet, failures-NNNNN.parquet"),
    model: Optional[Path] = typer.Option(None, "--model", help="run directory (default: the embedded model)"),
    method: Optional[str] = typer.Option(None, "--method", help="'conse' for the training-free baseline"),
    vectors: Optional[str] = VectorsOpt,
    vocab: Optional[str] = typer.Option(None, "--vocab", help="a named vocabulary or a file (default: the model's)"),
    top: int = typer.Option(5, "--top", help="tags per photo"),
    threshold: Optional[str] = typer.Option(None, "--threshold", help="keep tags with at least this confidence"),
    shard_size: int = typer.Option(1000, "--shard-size", help="photos per output shard"),
    ray: bool = typer.Option(False, "--ray", help="tag the shards on Ray (a local cluster unless --address)"),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster address (with --ray)"),
    workers: int = typer.Option(2, "--workers", help="Ray actors, each holding the model (with --ray)"),
    batch_size: int = typer.Option(32, "--batch-size"),
    search: str = SearchOpt,
    backend: str = BackendOpt,
    write_keywords: Optional[str] = typer.Option(None, "--write-keywords",
                                                 help="also write each photo's tags as XMP keywords: xmp, lightroom "
                                                      "or embed (as rank does); photos already tagged the same way "
                                                      "keep theirs"),
    force: bool = typer.Option(False, "--force", help="with --write-keywords: rewrite photos already tagged the same way"),
) -> None:
    """Tag a large photo set into Parquet shards; rerun to resume (finished shards are skipped)."""
    from tagrank.batch import BatchJob, run_batch
    from tagrank.images.runtimes import check_runtime
    from tagrank.ranking.search import check_search

    _positive("--top", top)
    _positive("--batch-size", batch_size)
    job = BatchJob(str(out), str(model) if model else None, method, vectors, vocab, top,
                   _number("--threshold", threshold), batch_size, check_search(search), check_runtime(backend),
                   write_keywords, force)
    summary = run_batch(inputs, job, shard_size, address, workers, use_ray=ray)
    written = f"; keywords written for {summary['keywords_now']} photo(s)" if write_keywords else ""
    typer.echo(f"{summary['photos']} photos in {summary['shards']} shards ({summary['skipped']} already done): "
               f"{summary['tagged_now']} tagged, {summary['failed_now']} failed now, in {summary['seconds']:.1f} s; "
               f"wrote {out}{written}")
    if summary["failed_now"]:
        typer.echo(f"error: {summary['failed_now']} photo(s) could not be read: see {out}/failures-*.parquet", err=True)
    if summary["problems"]:
        typer.echo(f"error: {len(summary['problems'])} input(s) named no photo (the warnings above)", err=True)
    if summary["failed_now"] or summary["problems"]:
        raise typer.Exit(1)


# -- serving ---------------------------------------------------------------------------------------

@app.command()
def serve(
    model: Optional[Path] = typer.Option(None, "--model", help="run directory (default: the embedded model)"),
    method: Optional[str] = typer.Option(None, "--method", help="'conse' for the training-free baseline"),
    vectors: Optional[str] = VectorsOpt,
    vocab: Optional[str] = typer.Option(None, "--vocab", help="default vocabulary of requests that name none"),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port"),
    batch_size: int = typer.Option(32, "--batch-size", help="photos per CNN batch, across concurrent requests"),
    batch_wait_ms: float = typer.Option(10.0, "--batch-wait-ms", help="how long a photo waits for others to batch with"),
    max_upload_mb: float = typer.Option(20.0, "--max-upload-mb", help="largest photo accepted"),
    search: str = SearchOpt,
    backend: str = BackendOpt,
) -> None:
    """Serve the tagger over HTTP: POST /v1/tags, a web page at /, OpenAPI docs at /docs."""
    try:
        import uvicorn

        from tagrank.serve import ServeSettings, create_app
    except ImportError as exc:
        raise TagrankError(f"tagrank serve needs the serve extra (pip install 'tagrank[serve]'): {exc.name} is missing") from None
    from tagrank.images.runtimes import check_runtime
    from tagrank.ranking.search import check_search
    from tagrank.tagger import Tagger
    from tagrank.labels.vocab import load_vocabulary

    import math
    import socket

    _positive("--batch-size", batch_size)
    check_runtime(backend)
    if not 0 < port < 65536:
        raise TagrankError(f"--port must be between 1 and 65535, got {port}")
    if not (math.isfinite(batch_wait_ms) and batch_wait_ms >= 0):
        raise TagrankError(f"--batch-wait-ms must be a number >= 0, got {batch_wait_ms}")
    if not (math.isfinite(max_upload_mb) and max_upload_mb > 0):
        raise TagrankError(f"--max-upload-mb must be a positive number, got {max_upload_mb}")
    try:  # the address is checked before the model loads and before anything is announced
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        with socket.create_server((host, port), family=family):
            pass
    except (OSError, OverflowError) as exc:
        reason = os_reason(exc) if isinstance(exc, OSError) else str(exc)
        raise SystemFailure(f"cannot listen on {host}:{port}: {reason}") from None
    tagger = Tagger.load(model, method, vectors, check_search(search))
    if vocab is not None:
        tagger.default_tags = load_vocabulary(vocab)
    tagger.prepare()  # embedded before the first request
    settings = ServeSettings(max_batch=batch_size, max_wait_ms=batch_wait_ms, max_upload_mb=max_upload_mb,
                             backend=backend)
    typer.echo(f"tagrank serving {tagger.name} on http://{host}:{port}/ (API description: /openapi.json)", err=True)
    uvicorn.run(create_app(tagger, settings), host=host, port=port, log_level="warning")


# -- evaluation ------------------------------------------------------------------------------------

@app.command("eval")
def eval_(
    dataset: str = typer.Argument(..., help="nuswide, corel5k, tinyimagenet, imagefolder, csv or folder"),
    runs: Optional[list[Path]] = typer.Argument(None, help="with --compare: run directories, one row each"),
    root: Path = typer.Option(..., "--root", help="dataset root"),
    model: Optional[list[Path]] = typer.Option(None, "--model", help="run directory from 'tagrank train' (repeatable)"),
    compare: bool = typer.Option(False, "--compare", help="evaluate every run given as an argument, one row each"),
    method: Optional[str] = typer.Option(None, "--method", help="'conse' for the training-free baseline"),
    scores: Optional[Path] = typer.Option(None, "--scores", help="Parquet score matrix: 'image' + one column per label"),
    protocol: str = typer.Option("conventional", "--protocol", help="conventional, zsl or gzsl"),
    k: str = typer.Option("3,5", "--k", help="comma-separated K values for top-K metrics"),
    unseen: Optional[Path] = typer.Option(None, "--unseen", help="unseen labels (zsl/gzsl); NUS-WIDE default: the 81 concepts"),
    split: str = typer.Option("test", "--split"),
    filter_empty: bool = typer.Option(False, "--filter-empty", help="drop images with no positive label"),
    out: Optional[Path] = typer.Option(None, "--out", help="report directory: metrics.json, per_class.csv, plots"),
    vectors: Optional[str] = VectorsOpt,
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="feature cache (default ~/.cache/tagrank)"),
    allow_seen: bool = typer.Option(False, "--allow-seen", help="zsl/gzsl: evaluate a model trained on some unseen "
                                                               "labels anyway (the report says so)"),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Evaluate models, ConSE or a score file: per-class and overall P/R/F1 at K, mAP, N+."""
    from tagrank.atomic import check_output_dir
    from tagrank.evaluation.protocols import REPORT_MARKER, evaluate, format_table, write_report

    models = list(model or [])
    if runs:
        if not compare:
            raise TagrankError(f"unexpected argument {runs[0]} (use --compare RUN_A RUN_B ... or --model RUN)")
        models += runs
    elif compare:
        raise TagrankError("--compare needs run directories: tagrank eval DATASET --root DIR --compare RUN_A RUN_B")
    try:
        ks = tuple(int(x) for x in k.split(","))
    except ValueError:
        raise TagrankError(f"--k must be comma-separated integers, got {k!r}") from None
    if out is not None:
        check_output_dir(out, REPORT_MARKER)
    report = evaluate(dataset, root, models, method, scores, protocol, ks, unseen, split, filter_empty,
                      vectors, str(cache_dir) if cache_dir else None, progress, allow_seen)
    typer.echo(format_table(report))
    if out is not None:
        write_report(report, out)
        typer.echo(f"wrote {out}")


# -- entry point -----------------------------------------------------------------------------------

class _StderrLines(logging.Handler):
    """Log records as ``warning: ...`` lines on whatever sys.stderr is at the time."""

    def emit(self, record: logging.LogRecord) -> None:
        sys.stderr.write(f"{record.levelname.lower()}: {printable(record.getMessage())}\n")


def main() -> None:
    """Console-script entry: the one place that turns every failure into one ``error:`` line.

    User errors exit 2; the operating system's (a full disk, an unreadable file: OSError), odd text
    (UnicodeError) and anything unexpected exit 1 (TAGRANK_DEBUG=1 shows the traceback of the last);
    Ctrl-C exits 130. Outputs are written atomically, so none of these leaves a partial file.
    """
    logger = logging.getLogger("tagrank")
    if not any(isinstance(h, _StderrLines) for h in logger.handlers):
        logger.addHandler(_StderrLines())
    logger.setLevel(logging.INFO)
    try:
        code = app(standalone_mode=False)
    except TagrankError as exc:
        typer.echo(f"error: {printable(str(exc))}", err=True)
        sys.exit(1 if isinstance(exc, SystemFailure) else 2)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("error: interrupted", err=True)
        sys.exit(130)
    except _UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `tagrank` or `tagrank index`: show help
            typer.echo(exc.ctx.get_help() if exc.ctx else str(exc))
            sys.exit(0)
        hint = f" (try '{exc.ctx.command_path} --help')" if exc.ctx else ""
        typer.echo(f"error: {exc.format_message()}{hint}", err=True)
        sys.exit(2)
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        typer.echo(f"error: {printable(where)}{os_reason(exc)}", err=True)
        sys.exit(1)
    except UnicodeError as exc:
        typer.echo(f"error: text that is not valid {exc.encoding if hasattr(exc, 'encoding') else 'UTF-8'}: "
                   f"{printable(str(exc))}",
                   err=True)
        sys.exit(1)
    except Exception as exc:  # a bug: still one line (the traceback with TAGRANK_DEBUG=1)
        if os.environ.get("TAGRANK_DEBUG"):
            raise
        typer.echo(f"error: internal error ({type(exc).__name__}: {printable(str(exc).splitlines()[0]) if str(exc) else ''}); "
                   "rerun with TAGRANK_DEBUG=1 for the traceback and please report it", err=True)
        sys.exit(1)
    if code == 130:  # typer may return Ctrl-C's status instead of raising
        typer.echo("error: interrupted", err=True)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
