"""Batch tagging of large photo sets into Parquet shards, in one process or on a Ray cluster.

The photo list (folders, globs, or a Parquet/CSV file with a ``path`` column) is sorted and cut into
shards of ``shard_size`` photos. Shard i becomes ``OUT/tags-0000i.parquet`` (one row per photo and tag:
image, rank, tag, score, confidence) and ``OUT/failures-0000i.parquet`` (image, error) for the photos
that could not be read, both written atomically; ``OUT/batch.json`` records the list and the model, so
a rerun skips the shards already written (resuming a killed run) and refuses a different list.

With Ray, the shards go through Ray Data to a pool of actors that each load the tagger once; without
it, the same function tags them one after another here. The ranking is :meth:`Tagger.iter_rank`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from tagrank._log import log
from tagrank.atomic import atomic_file, check_output_dir, write_text_atomic
from tagrank.output import text_name
from tagrank.errors import TagrankError
from tagrank.labels.vocab import load_vocabulary

MANIFEST = "batch.json"


@dataclass
class BatchJob:
    """What every shard needs to know: the tagger to load and how to rank."""

    out: str
    model: str | None = None
    method: str | None = None
    vectors: str | None = None
    vocab: str | None = None
    top: int = 5
    threshold: float | None = None
    batch_size: int = 32
    search: str = "auto"  # how vocabularies are searched (tagrank.ranking.search)
    backend: str = "auto"  # where the CNN runs (tagrank.images.runtimes); not part of the run's record: the
    # runtimes' features agree to ~1e-5, so a run resumed on another one is the same run
    write_keywords: str | None = None  # also each photo's keywords (tagrank.keywords: xmp, lightroom, embed)
    force: bool = False  # rewrite the keywords of photos already tagged the same way

    def load_tagger(self):
        """The tagger this job describes (once per process, or per Ray actor)."""
        from tagrank.tagger import Tagger

        return Tagger.load(self.model, self.method, self.vectors, self.search)


def list_photos(inputs: list[str]) -> tuple[list[str], list[str]]:
    """Photos named by folders, globs and files, or listed in a Parquet/CSV file's ``path`` column."""
    from tagrank.images.photos import find_images

    listed, rest, empty_rows = [], [], []
    for item in inputs:
        if str(item).lower().endswith((".parquet", ".csv")) and Path(item).is_file():
            import pandas as pd

            frame = pd.read_parquet(item) if str(item).lower().endswith(".parquet") else pd.read_csv(item)
            column = next((c for c in ("path", "image") if c in frame.columns), None)
            if column is None:
                raise TagrankError(f"{item}: a photo list needs a 'path' column")
            empty = [i for i, p in enumerate(frame[column]) if pd.isna(p) or not str(p)]
            if empty:  # a missing value is no photo (pandas would print it as "nan")
                empty_rows.append(f"{item}: {len(empty)} row(s) have no {column} (the first: row {empty[0] + 1})")
            skipped = set(empty)
            listed += [str(p) for i, p in enumerate(frame[column]) if i not in skipped]
        else:
            rest.append(item)
    found, problems = find_images(rest) if rest else ([], [])
    return sorted(dict.fromkeys(listed + [str(p) for p in found])), empty_rows + problems


def shard_names(index: int) -> tuple[str, str]:
    return f"tags-{index:05d}.parquet", f"failures-{index:05d}.parquet"


def tag_shard(job: BatchJob, index: int, paths: list[str], tagger) -> dict:
    """Tag one shard's photos with ``tagger`` and write its two Parquet files; returns counts for the summary."""
    import pandas as pd

    started = time.perf_counter()
    vocab = load_vocabulary(job.vocab) if job.vocab else None
    rows, failures, keywords_written = [], [], 0
    if job.write_keywords:
        from tagrank import keywords

        made_with = keywords.run_stamp(job.model, job.method, job.vocab, job.top, job.threshold)
    for record in tagger.iter_rank(paths, vocab, job.top, job.threshold, batch_size=job.batch_size,
                                   backend=job.backend):
        image = text_name(record["image"])  # Parquet holds UTF-8 text: a name's odd bytes as \xNN
        if "error" in record:
            failures.append({"image": image, "error": text_name(record["error"])})
            continue
        rows += [{"image": image, **tag} for tag in record["tags"]]
        if job.write_keywords:  # the tags stay in the shard; a photo whose keywords fail is listed as failed too
            try:
                keywords_written += keywords.write_keywords(record["image"], record["tags"], job.write_keywords,
                                                            made_with, force=job.force)
            except TagrankError as exc:
                failures.append({"image": image, "error": text_name(str(exc))})
    tags_name, failures_name = shard_names(index)
    for name, frame in ((failures_name, pd.DataFrame(failures, columns=["image", "error"])),
                        (tags_name, pd.DataFrame(rows, columns=["image", "rank", "tag", "score", "confidence"]))):
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        with atomic_file(Path(job.out) / name) as f:  # the tags file last: its presence marks the shard done
            f.write(buffer.getvalue())
    return {"shard": index, "photos": len(paths), "failed": len(failures), "keywords": keywords_written,
            "seconds": time.perf_counter() - started}


class _ShardTagger:
    """A Ray actor: loads the tagger once, then tags the shards Ray Data hands it."""

    def __init__(self, job: dict):
        self.job = BatchJob(**job)
        self.tagger = self.job.load_tagger()

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        done = [tag_shard(self.job, int(i), list(paths), self.tagger) for i, paths in zip(batch["shard"], batch["paths"])]
        return {key: np.array([d[key] for d in done]) for key in ("shard", "photos", "failed", "keywords", "seconds")}


def run_batch(inputs: list[str], job: BatchJob, shard_size: int = 1000, ray_address: str | None = None,
              workers: int = 2, use_ray: bool = False) -> dict:
    """Tag every photo of ``inputs`` into ``job.out``; shards already there are skipped. Returns a summary."""
    if shard_size <= 0 or workers <= 0:
        raise TagrankError("--shard-size and --workers must be positive")
    out = Path(job.out)
    check_output_dir(out, MANIFEST)
    paths, problems = list_photos(inputs)
    for problem in problems:
        log.warning("%s", problem)
    if not paths:
        raise TagrankError("; ".join(problems) if problems else "no photos given")
    # everything the run needs is checked before anything is recorded, so a corrected command is not refused
    tagger = job.load_tagger()
    tagger.check_threshold(job.threshold)
    from tagrank.images.runtimes import check_runtime

    check_runtime(job.backend)
    if job.write_keywords is not None or job.force:
        from tagrank.keywords import check_options

        check_options(job.write_keywords, job.force)
    tags = tagger.prepare(load_vocabulary(job.vocab) if job.vocab else None).tags
    fingerprint = hashlib.sha256("\n".join(paths).encode("utf-8", "surrogateescape")).hexdigest()
    manifest = {"format": "tagrank-batch/1", "photos": len(paths), "photo_list_sha256": fingerprint,
                "shard_size": shard_size, "model": job.model or "(embedded default)", "method": job.method,
                "vocab": job.vocab, "top": job.top, "threshold": job.threshold,
                # the vocabulary's content: a file edited between runs must not mix two vocabularies
                "vocab_sha256": hashlib.sha256("\n".join(tags).encode("utf-8", "surrogateescape")).hexdigest()}
    if job.search != "auto":  # recorded only when chosen, so runs started before the option still resume
        manifest["search"] = job.search
    if job.write_keywords:  # a resumed run must not leave the finished shards' photos without keywords
        manifest["write_keywords"] = job.write_keywords
    before = _manifest(out)
    if before is not None:
        # a run recorded before tagrank kept the vocabulary's content still resumes
        changed = sorted(k for k in manifest.keys() | before.keys()
                         if before.get(k) != manifest.get(k) and not (k == "vocab_sha256" and k not in before))
        if changed:
            raise TagrankError(f"{out} holds a batch run of other photos or options ({', '.join(changed)} differ): "
                               "choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    shards = [(i, paths[start:start + shard_size]) for i, start in enumerate(range(0, len(paths), shard_size))]
    todo = [(i, part) for i, part in shards if not (out / shard_names(i)[0]).is_file()]
    log.info("%d photos in %d shards; %d already done", len(paths), len(shards), len(shards) - len(todo))
    started = time.perf_counter()
    if todo and use_ray:
        done = _on_ray(todo, job, ray_address, workers)
    else:
        done = [tag_shard(job, i, part, tagger) for i, part in todo]
    return {"photos": len(paths), "shards": len(shards), "skipped": len(shards) - len(todo),
            "tagged_now": sum(d["photos"] - d["failed"] for d in done), "failed_now": sum(d["failed"] for d in done),
            "keywords_now": sum(d["keywords"] for d in done),
            "seconds": time.perf_counter() - started, "problems": problems}


def _manifest(out: Path) -> dict | None:
    """The manifest of the run already in ``out``, if any; one clear error when it is not one."""
    path = out / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        manifest = exc
    if not isinstance(manifest, dict) or manifest.get("format") != "tagrank-batch/1":
        raise TagrankError(f"{path} is not a tagrank batch manifest (damaged or edited): remove {out} to start over, "
                           "or choose another --out")
    return manifest


def _on_ray(todo: list[tuple[int, list[str]]], job: BatchJob, address: str | None, workers: int) -> list[dict]:
    os.environ.setdefault("RAY_DATA_LOG_LEVEL", "WARNING")  # read when ray.data configures its logging
    try:
        import ray
    except ImportError:
        raise TagrankError("--ray needs Ray (pip install 'tagrank[ray]')") from None
    from dataclasses import asdict

    import logging

    started_here = not ray.is_initialized()
    if started_here:  # Ray's own INFO lines would drown tagrank's (warnings still show)
        ray.init(address=address, num_cpus=None if address else workers, include_dashboard=False,
                 log_to_driver=False, logging_level=logging.WARNING,
                 runtime_env={"env_vars": {"TAGRANK_CACHE": os.environ["TAGRANK_CACHE"]}}
                 if os.environ.get("TAGRANK_CACHE") else None)
    try:
        dataset = ray.data.from_items([{"shard": i, "paths": part} for i, part in todo])
        # One shard per call; each actor one CPU (torch inside it uses one thread).
        results = dataset.map_batches(_ShardTagger, fn_constructor_kwargs={"job": asdict(job)}, batch_size=1,
                                      compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=1).take_all()
    finally:
        if started_here:
            ray.shutdown()
    return [{k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()} for r in results]
