"""Camera photos at full speed: `tagrank rank` on 12 MP JPEGs against the same photos at 640×480, in one run.

    python scripts/bench_camera.py [--shared ../shared] [--photos 48]

The photos are Corel5k test photos enlarged to 4032×3024 (a phone's 12 MP) and saved as JPEG (quality 90),
and the same photos at 640×480. `tagrank rank DIR --top 5 --backend torch` runs over each folder twice,
alternating (wall seconds, start-up included); photos/s of the 12 MP folder over the 640 px folder's is the
figure (goal ≥ 85 %). Then the tags: each 12 MP photo decoded at a reduced scale by its DCT (what tagrank does)
against the same photo decoded in full, through the default model: identical top-5 lists (order too), the
share of top-5 tags in common, the same first tag.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
CAMERA, SMALL = (4032, 3024), (640, 480)


def main() -> None:
    from tagrank.images.datasets import load_dataset
    from tagrank.images.photos import load_image
    from tagrank.tagger import Tagger

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--photos", type=int, default=48)
    args = parser.parse_args()
    started = time.perf_counter()
    corel = load_dataset("corel5k", args.shared / "data" / "corel5k", "test").paths[:args.photos]
    with tempfile.TemporaryDirectory() as scratch:
        folders = {"12 MP": Path(scratch) / "camera", "640×480": Path(scratch) / "small"}
        for size, folder in zip((CAMERA, SMALL), folders.values()):
            folder.mkdir()
            for i, path in enumerate(corel):
                Image.open(path).convert("RGB").resize(size, Image.BICUBIC).save(folder / f"{i:03d}.jpg", quality=90)
        seconds: dict[str, list[float]] = {name: [] for name in folders}
        for _ in range(2):
            for name, folder in folders.items():
                start = time.perf_counter()
                subprocess.run(["tagrank", "rank", str(folder), "--top", "5", "--format", "jsonl", "--no-progress",
                                "--backend", "torch"], check=True, stdout=subprocess.DEVNULL)
                seconds[name].append(time.perf_counter() - start)
        share = min(seconds["640×480"]) / min(seconds["12 MP"])
        speed = (f"`tagrank rank DIR --top 5 --backend torch` over {len(corel)} photos, wall seconds of two runs "
                 "each, start-up included: " + "; ".join(f"{name} " + ", ".join(f"{v:.2f}" for v in values)
                                                           for name, values in seconds.items())
                 + f". 12 MP photos/s = **{100 * share:.0f} %** of 640×480's (best runs; goal ≥ 85 %).")
        print(speed)

        tagger = Tagger.load()
        backbone, prepared = tagger.backbone, tagger.prepare()
        photos = sorted(folders["12 MP"].glob("*.jpg"))
        reduced = np.stack([backbone.preprocess(load_image(p, min_side=backbone.decode_side)) for p in photos])
        full = np.stack([backbone.preprocess(load_image(p)) for p in photos])

        def top5(arrays: np.ndarray) -> list[list[str]]:
            features = backbone.features(list(arrays))
            return [[t["tag"] for t in tags] for tags in tagger.rank_features(features, prepared)]

        pairs = list(zip(top5(reduced), top5(full)))
        same = np.mean([a == b for a, b in pairs])
        shared = np.mean([len(set(a) & set(b)) / 5 for a, b in pairs])
        first = np.mean([a[0] == b[0] for a, b in pairs])
        tags = (f"The 12 MP photos decoded at a reduced scale against in full, through the default model: top-5 tags "
                f"shared {100 * shared:.1f} %, same first tag {100 * first:.1f} %, identical ordered top-5 lists "
                f"{100 * same:.1f} % (largest pixel difference after the CNN's resize "
                f"{np.abs(reduced.astype(int) - full).max()} of 255).")
        print(tags)
    from tagrank.evaluation.markdown import write_section

    reading = (f"Corel5k test photos enlarged to {CAMERA[0]}×{CAMERA[1]} (a phone's 12 MP, JPEG quality 90) and the "
               f"same photos at {SMALL[0]}×{SMALL[1]}; a camera JPEG is decoded at a reduced scale by its DCT.")
    write_section(ROOT / "BENCHMARKS.md", "camera", "### Camera photos", "python scripts/bench_camera.py",
                  time.perf_counter() - started, reading, speed + "\n\n" + tags)


if __name__ == "__main__":
    main()
