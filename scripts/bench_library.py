"""Training on a person's keywords: Corel5k written out as a photo library with XMP sidecars, trained by
`tagrank train library`, against `tagrank train corel5k` with the same config, both scored on Corel5k's test split.

    python scripts/bench_library.py [--shared ../shared] [--config configs/transform.toml] [--epochs N] [--work DIR]

The library holds Corel5k's training photos (links to them) and, for each, a sidecar NAME.EXT.xmp whose
dc:subject lists the photo's Corel5k words, written by exiftool (an independent writer, as a photo manager
would). Both trainings hold out their own validation photos; the figures are `tagrank eval corel5k`'s on the
test split (per-word P/R/F1@5 and mAP), which neither saw.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ("CF1@5", "OF1@5", "mAP")


def write_library(corel, folder: Path) -> int:
    """Links to ``corel``'s photos in ``folder``, each with an XMP sidecar of its words (one exiftool run)."""
    folder.mkdir(parents=True)
    arguments = []
    for i, (path, row) in enumerate(zip(corel.paths, corel.matrix)):
        photo = folder / f"{i:05d}{Path(path).suffix}"
        photo.symlink_to(Path(path).resolve())
        words = [corel.labels[j] for j in row.nonzero()[0]]
        if words:
            arguments += [f"-XMP-dc:Subject={word}" for word in words]
            arguments += ["-o", f"{photo}.xmp", str(photo), "-execute"]
    with tempfile.NamedTemporaryFile("w", suffix=".args", delete=False, encoding="utf-8") as handle:
        handle.write("\n".join(arguments) + "\n")
    subprocess.run(["exiftool", "-q", "-@", handle.name], check=True, stdout=subprocess.DEVNULL)
    Path(handle.name).unlink()
    return len(list(folder.glob("*.xmp")))


def trained_figures(run: Path, corel_root: Path, report: Path) -> dict:
    """The trained model's per-word F1@5, overall F1@5 and mAP on Corel5k's test split (`tagrank eval`)."""
    subprocess.run(["tagrank", "eval", "corel5k", "--root", str(corel_root), "--model", str(run), "--out", str(report),
                    "--no-progress"], check=True, stdout=subprocess.DEVNULL)
    methods = json.loads((report / "metrics.json").read_text(encoding="utf-8"))["methods"]
    model = next(m for m in methods if m["name"] != "prior")  # the report's first row ranks by label frequency
    return {"CF1@5": model["top_k"]["5"]["C-F1"], "OF1@5": model["top_k"]["5"]["O-F1"], "mAP": model["mAP"]}


def main() -> None:
    from tagrank.images.datasets import load_dataset

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "transform.toml")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "library")
    parser.add_argument("--epochs", type=int, default=None, help="both trainings' epochs (default: the config's)")
    args = parser.parse_args()
    if shutil.which("exiftool") is None:
        raise SystemExit("exiftool is needed to write the library's sidecars (Debian: libimage-exiftool-perl)")
    started = time.perf_counter()
    corel_root = args.shared / "data" / "corel5k"
    shutil.rmtree(args.work, ignore_errors=True)
    library = args.work / "photos"
    sidecars = write_library(load_dataset("corel5k", corel_root, "train"), library)
    print(f"library: {sidecars} photos with sidecars ({time.perf_counter() - started:.0f} s)", flush=True)
    runs = {"tagrank train corel5k": ["corel5k", "--root", str(corel_root)],
            "tagrank train library": ["library", "--root", str(library), "--keywords-from", "sidecar"]}
    rows = []
    for name, dataset in runs.items():
        run = args.work / name.split()[-1]
        start = time.perf_counter()
        epochs = ["--epochs", str(args.epochs)] if args.epochs else []
        subprocess.run(["tagrank", "train", *dataset, "--config", str(args.config), "--out", str(run), "--no-progress",
                        *epochs], check=True, stdout=subprocess.DEVNULL)
        metrics = trained_figures(run, corel_root, args.work / f"report-{run.name}")
        rows.append([f"`{name}`"] + [f"{100 * metrics[k]:.1f}" for k in FIGURES] +
                    [f"{time.perf_counter() - start:.0f}"])
        print(rows[-1], flush=True)
    from tagrank.evaluation.markdown import table, write_section

    epochs = f", {args.epochs} epochs" if args.epochs else ""
    reading = (f"Corel5k's {sidecars:,} training photos as a person's library, each photo's words written into an XMP "
               f"sidecar by exiftool; `tagrank train library` reads them back and trains {args.config.name}"
               f"{epochs}; `tagrank train corel5k` trains the same config from Corel5k's label files. Both are "
               "scored on Corel5k's test split: the library should train as well as the dataset does.")
    command = "python scripts/bench_library.py" + (f" --epochs {args.epochs}" if args.epochs else "")
    write_section(ROOT / "BENCHMARKS.md", "library", "### Training on a person's keywords", command,
                  time.perf_counter() - started, reading,
                  table(["training", *FIGURES, "seconds"], rows))


if __name__ == "__main__":
    main()
