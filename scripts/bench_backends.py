"""The CNN on a CPU: torch against OpenVINO and ONNX Runtime (where installed), and torch.compile on request.

    python scripts/bench_backends.py [--shared ../shared] [--photos 500] [--library 240] [--compile]

1. The bare forward of the default backbone (Lite0, the whole view) on batches of 32 at two shapes
   (landscape 224×288, portrait 320×224), each runtime against torch's channels-last forward in the same run:
   milliseconds per photo, median of 5 calls after a warm one.
2. Features and tags of ``--photos`` real photos (Tiny ImageNet validation and Corel5k test, half each) with
   torch and with each runtime: the largest feature difference, and the share of identical top-5 lists of
   the default model.
3. `tagrank rank DIR --top 5` over ``--library`` Corel5k photos: the default model on torch and on each
   runtime, and ConSE (torch), twice each, alternating (wall seconds, start-up included).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
SHAPES = [(224, 288), (320, 224)]


def timed(forward, x: torch.Tensor, calls: int = 5) -> float:
    """Median milliseconds per photo of ``forward(x)`` over ``calls`` calls after a warm one."""
    with torch.inference_mode():
        forward(x)
        times = []
        for _ in range(calls):
            start = time.perf_counter()
            forward(x)
            times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times) / len(x)


def other_runtimes(backbone, cache: Path, compile_torch: bool) -> dict:
    """Every runtime that loads here, by name: tagrank's (OpenVINO, ONNX Runtime, as converted and kept in
    ``cache``) and, with ``compile_torch``, torch.compile (measured only; its first compile ran over 15 minutes
    on 2 cores without finishing)."""
    from tagrank.images import runtimes

    found = {name: runtimes.runtime_forward(name, backbone, cache) for name in runtimes.RUNTIMES
             if runtimes.installed(name)}
    if not compile_torch:
        return found
    try:
        compiled_torch = torch.compile(backbone.network_features)
        with torch.inference_mode():
            compiled_torch(backbone.to_tensor(np.zeros((2, *SHAPES[0], 3), np.uint8)))
        found["torch.compile"] = compiled_torch
    except Exception as exc:  # a missing C++ compiler, an unsupported op: say so and go on
        print(f"torch.compile: not measured ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})")
    return found


def main() -> None:
    from tagrank.images import runtimes as tagrank_runtimes
    from tagrank.images.backbone import Backbone
    from tagrank.images.datasets import load_dataset
    from tagrank.images.features import extract
    from tagrank.tagger import Tagger

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--photos", type=int, default=500)
    parser.add_argument("--library", type=int, default=240)
    parser.add_argument("--compile", action="store_true", help="also torch.compile (its first compile is slow)")
    args = parser.parse_args()
    started = time.perf_counter()
    torch.manual_seed(0)
    tagger = Tagger.load()
    backbone = Backbone(tagger.backbone.name)  # the default model's view, which its users convert
    with tempfile.TemporaryDirectory() as scratch:
        runtimes = other_runtimes(backbone, Path(scratch), args.compile)
        forward_rows = []
        for height, width in SHAPES:
            x = backbone.to_tensor(np.random.default_rng(0).integers(0, 256, (32, height, width, 3), np.uint8))
            reference = timed(backbone, x)
            row = [f"{height}×{width}", f"{reference:.1f}"]
            for name, forward in runtimes.items():
                ms = timed(forward, x)
                row.append(f"{ms:.1f} (**{reference / ms:.1f}×**)")
            forward_rows.append(row)
            print(row, flush=True)

        data = args.shared / "data"
        tiny = load_dataset("tinyimagenet", data / "tiny-imagenet", "test").paths
        corel = load_dataset("corel5k", data / "corel5k", "test").paths
        half = args.photos // 2
        paths = tiny[::max(1, len(tiny) // half)][:half] + corel[:args.photos - half]
        prepared = tagger.prepare()
        on_torch = extract(backbone, paths, progress=False)
        reference_tags = [[t["tag"] for t in tags] for tags in tagger.rank_features(on_torch.features, prepared)]
        agreement = []
        for name, forward in runtimes.items():
            other = extract(backbone, paths, progress=False, forward=forward)
            tags = [[t["tag"] for t in tags] for tags in tagger.rank_features(other.features, prepared)]
            same = np.mean([a == b for a, b in zip(reference_tags, tags)])
            agreement.append(f"{name}: largest feature difference from torch's "
                             f"{np.abs(other.features - on_torch.features).max():.1e}, identical top-5 lists "
                             f"{100 * same:.1f} %")
            print(agreement[-1], flush=True)

        library = Path(scratch) / "library"
        library.mkdir()
        for i, path in enumerate(corel[:args.library]):
            shutil.copy(path, library / f"{i:05d}{Path(path).suffix}")
        runs = {"default, torch": ["--backend", "torch"],
                **{f"default, {name}": ["--backend", name] for name in tagrank_runtimes.RUNTIMES
                   if tagrank_runtimes.installed(name)},
                "ConSE, torch": ["--method", "conse", "--backend", "torch"]}
        seconds: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(2):
            for name, options in runs.items():
                start = time.perf_counter()
                subprocess.run(["tagrank", "rank", str(library), "--top", "5", "--format", "jsonl", "--no-progress",
                                *options], check=True, stdout=subprocess.DEVNULL)
                seconds[name].append(time.perf_counter() - start)
    from tagrank.evaluation.markdown import table, write_section

    reading = (f"The bare forward of the default backbone (Lite0, the whole view) on a batch of 32, ms per photo, "
               f"median of 5 calls after a warm one, each runtime against torch (channels-last) in the same run; "
               f"then the features and the default model's top 5 of {len(paths)} Tiny ImageNet and Corel5k photos on "
               f"each runtime against torch's; then `tagrank rank DIR --top 5` over {args.library} Corel5k photos, "
               "wall seconds of two runs each (start-up and, on a runtime's first run, its conversion included).")
    body = "\n\n".join([
        table(["photo shape", "torch, ms per photo", *runtimes], forward_rows),
        "Agreement with torch: " + "; ".join(agreement) + ".",
        table(["`tagrank rank DIR`", "wall seconds"], [[name, ", ".join(f"{v:.1f}" for v in values)]
                                                        for name, values in seconds.items()])])
    write_section(ROOT / "BENCHMARKS.md", "backends", "### The CNN on a CPU: torch, OpenVINO, ONNX Runtime",
                  "python scripts/bench_backends.py", time.perf_counter() - started, reading, body)


if __name__ == "__main__":
    main()
