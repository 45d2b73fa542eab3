"""Batching concurrent requests: one thread owns the model and tags photos in batches.

Requests decode their photos (in the web server's thread pool) and submit the pixel arrays; the
batcher's single worker thread collects up to ``max_batch`` photos or waits at most ``max_wait``
seconds after the first, runs the CNN once over all of them, and ranks each request's photos with its
own vocabulary and options. So the CNN sees batches as in offline ``tagrank rank`` however the
requests arrive. A request's own vocabulary is prepared in the request's thread, never here, so a large
one does not hold up the others' photos.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np
import torch

from tagrank.tagger import PreparedVocabulary, Tagger


@dataclass
class Job:
    """One request's decoded photos and ranking options; ``future`` gets one tag list per photo."""

    arrays: list[np.ndarray]
    vocab: PreparedVocabulary | None  # prepared by the request (Tagger.prepare + warm); None: the default
    top: int
    threshold: float | None
    future: Future = field(default_factory=Future)


class Batcher:
    """A worker thread tagging the photos of queued jobs, many jobs per CNN batch."""

    def __init__(self, tagger: Tagger, max_batch: int = 32, max_wait: float = 0.01, forward=None):
        """``forward``: the backbone's forward pass on another runtime (:meth:`Tagger.forward_pass`)."""
        self.tagger = tagger
        self.forward = forward
        self.max_batch = max_batch
        self.max_wait = max_wait
        self.batches = 0  # CNN batches run, and photos in them (for /v1/health and the load test)
        self.photos = 0
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="tagrank-batcher", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> Future:
        self._queue.put(job)
        return job.future

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _collect(self, first: Job) -> list[Job]:
        jobs, photos = [first], len(first.arrays)
        deadline = time.monotonic() + self.max_wait
        while photos < self.max_batch:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                job = self._queue.get(timeout=remaining)
            except queue.Empty:
                break
            if job is None:  # closing: finish this batch, then stop
                self._queue.put(None)
                break
            jobs.append(job)
            photos += len(job.arrays)
        return jobs

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            jobs = self._collect(first)
            try:
                features = self._features([a for job in jobs for a in job.arrays])
            except Exception as exc:  # noqa: BLE001 - reported to every waiting request
                for job in jobs:
                    job.future.set_exception(exc)
                continue
            self._rank(jobs, features)

    def _rank(self, jobs: list[Job], features: torch.Tensor) -> None:
        """Rank each job's photos; jobs that ask the same (vocabulary, top, threshold) are ranked in one call,
        since a call's fixed cost (the reference labels' scale, the top-K) outweighs one photo's."""
        starts = np.cumsum([0] + [len(job.arrays) for job in jobs])
        groups: dict[tuple, list[int]] = {}
        for i, job in enumerate(jobs):
            groups.setdefault((id(job.vocab), job.top, job.threshold), []).append(i)
        for members in groups.values():
            first = jobs[members[0]]
            rows = torch.cat([torch.arange(starts[i], starts[i + 1]) for i in members])
            try:
                prepared = first.vocab if first.vocab is not None else self.tagger.prepare()
                ranked = self.tagger.rank_features(features[rows], prepared, first.top, first.threshold)
            except Exception as exc:  # noqa: BLE001 - a bad vocabulary fails its own requests only
                for i in members:
                    jobs[i].future.set_exception(exc)
                continue
            done = 0
            for i in members:
                jobs[i].future.set_result(ranked[done:done + len(jobs[i].arrays)])
                done += len(jobs[i].arrays)

    def _features(self, arrays: list[np.ndarray]) -> torch.Tensor:
        with torch.inference_mode():
            features = self.tagger.backbone.features(arrays, self.max_batch, self.forward)
        # CNN batches run: one per photo shape (the whole view's vary with the aspect) and max_batch photos
        self.batches += sum(-(-n // self.max_batch) for n in Counter(a.shape for a in arrays).values())
        self.photos += len(arrays)
        return features
