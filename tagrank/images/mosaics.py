"""Mosaics: 2–4 photos of different labels in one picture, at different sizes (photos with several objects).

Built from a single-label dataset (one class per photo), they check a tagger on multi-object photos with
known labels (:mod:`tagrank.evaluation.everyday`), and they train one: a ``[[data.sources]]`` entry with
``mosaics = N`` is N mosaics of that dataset's training photos (:func:`mosaic_dataset`), so the learned rows
also see pictures where several tags are right at once, not only one centred object per photo.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from tagrank.errors import TagrankError
from tagrank.images.datasets import Dataset


@dataclass
class Mosaics:
    paths: list[str]
    tiles: list[list[int]]  # per mosaic, the classes of its photos (indices into the source's classes)


def _split(rect: tuple[int, int, int, int], rng: np.random.Generator) -> list[tuple[int, int, int, int]]:
    """Cut a rectangle (x, y, w, h) in two across its longer side, at 35–65 %."""
    x, y, w, h = rect
    if w >= h:
        cut = int(w * rng.uniform(0.35, 0.65))
        return [(x, y, cut, h), (x + cut, y, w - cut, h)]
    cut = int(h * rng.uniform(0.35, 0.65))
    return [(x, y, w, cut), (x, y + cut, w, h - cut)]


def make_mosaics(paths: list[str], classes: list[int], out: Path, count: int, seed: int = 0,
                 size: tuple[int, int] = (384, 256)) -> Mosaics:
    """``count`` mosaics of 2–4 photos of different classes, written as JPEGs into ``out``.

    The canvas (landscape or portrait at random) is cut into as many rectangles, the largest one cut each
    time, so the photos get different sizes; each photo covers its rectangle (scaled, centre cropped).
    The same inputs and seed give the same mosaics.
    """
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    by_class: dict[int, list[int]] = {}
    for i, c in enumerate(classes):
        by_class.setdefault(c, []).append(i)
    names = sorted(by_class)
    made = Mosaics([], [])
    for m in range(count):
        n = int(rng.integers(2, 5))
        chosen = rng.choice(len(names), size=n, replace=False)
        photos = [by_class[names[c]][int(rng.integers(len(by_class[names[c]])))] for c in chosen]
        width, height = size if rng.random() < 0.5 else size[::-1]
        rects = [(0, 0, width, height)]
        while len(rects) < n:
            rects.sort(key=lambda r: r[2] * r[3])
            rects += _split(rects.pop(), rng)
        canvas = Image.new("RGB", (width, height))
        for photo, (x, y, w, h) in zip(photos, rects):
            with Image.open(paths[photo]) as im:
                im = im.convert("RGB")
                scale = max(w / im.width, h / im.height)
                im = im.resize((max(w, round(im.width * scale)), max(h, round(im.height * scale))), Image.BICUBIC)
                left, top = (im.width - w) // 2, (im.height - h) // 2
                canvas.paste(im.crop((left, top, left + w, top + h)), (x, y))
        path = out / f"mosaic_{m:04d}.jpg"
        canvas.save(path, quality=90)
        made.paths.append(str(path))
        made.tiles.append([classes[p] for p in photos])
    return made


def mosaic_dataset(data: Dataset, count: int, folder: Path, seed: int) -> Dataset:
    """``count`` mosaics of ``data``'s photos (which must have one label each) as a dataset with the same labels,
    each mosaic labelled with its photos' labels. They are written under ``folder`` (in a subfolder named by
    the photos, count and seed, so that the same inputs give the same files and the feature cache reuses them)."""
    per_photo = data.matrix.sum(axis=1)
    if len(data) == 0 or (per_photo != 1).any():
        raise TagrankError(f"{data.name}: mosaics need one label per photo; {int((per_photo != 1).sum())} of "
                           f"{len(data)} photos have {'none or several' if len(data) else 'none'}")
    classes = [int(c) for c in data.matrix.argmax(axis=1)]
    if len(set(classes)) < 4:
        raise TagrankError(f"{data.name}: mosaics need photos of at least 4 labels, not {len(set(classes))}")
    digest = hashlib.sha256("\n".join(data.paths).encode()).hexdigest()[:12]
    made = make_mosaics(data.paths, classes, folder / f"{data.name}-{count}-seed{seed}-{digest}", count, seed)
    matrix = np.zeros((count, len(data.labels)), dtype=bool)
    for i, tiles in enumerate(made.tiles):
        matrix[i, tiles] = True
    return Dataset(f"{data.name} mosaics", [Path(p).stem for p in made.paths], made.paths, list(data.labels), matrix,
                   aliases=dict(data.aliases))
