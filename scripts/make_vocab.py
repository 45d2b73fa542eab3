"""Derive the named vocabularies in vocab/ from the real dataset files under ../shared/data.

    python scripts/make_vocab.py [--shared ../shared]

Writes nuswide81.txt (the 81 concepts), nuswide1k.txt (the 1,000 Flickr tags) and corel5k.txt (the 374
Corel5k words), one tag per line in the order of the source files, and everyday.txt, the default
vocabulary: the 4,585 tags of the Recognize Anything Model (RAM, Apache-2.0,
https://github.com/xinyu1205/recognize-anything) followed by the words users expect from the datasets
here (Corel5k, the NUS-WIDE concepts, the Tiny ImageNet and ImageNet-1k class names), tags that
normalise alike ('Beach', '#beach', 'beach') kept once in their first spelling. Also imagenet1k.txt: the
1,000 ImageNet-1k class names in class order, which ConSE and the backbone block read.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tagrank.images.backbone import IMAGENET_CLASSES
from tagrank.images.datasets import load_dataset
from tagrank.labels.encoders import normalise_tag
from tagrank.labels.vocab import merge_duplicates

ROOT = Path(__file__).resolve().parent.parent
VOCAB = ROOT / "vocab"  # the named vocabularies (setup.py ships them in the package)


def read_lines(path: Path) -> list[str]:
    # The NUS-WIDE and Corel lists have CRLF endings and trailing blanks.
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def timm_imagenet_names() -> list[str]:
    """The ImageNet-1k class names in class order: the first lemma of each synset in timm's metadata."""
    from tagrank._compat import ensure_torchvision_importable

    ensure_torchvision_importable()
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return [info.index_to_description(i).split(",")[0].strip() for i in range(1000)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    args = parser.parse_args()
    data = args.shared / "data"
    lists = {
        "nuswide81.txt": read_lines(data / "nuswide" / "ConceptsList" / "Concepts81.txt"),
        "nuswide1k.txt": read_lines(data / "nuswide" / "NUS_WID_Tags" / "TagList1k.txt"),
        "corel5k.txt": read_lines(data / "corel5k" / "labels" / "words"),
    }
    tiny = load_dataset("tinyimagenet", data / "tiny-imagenet", "train").labels
    imagenet = timm_imagenet_names()
    (VOCAB / IMAGENET_CLASSES.name).write_text("\n".join(imagenet) + "\n", encoding="utf-8")  # class order, duplicates kept
    print(f"{IMAGENET_CLASSES.name}: {len(imagenet)} class names")
    everyday = (read_lines(data / "vocab" / "ram_tag_list.txt") + lists["corel5k.txt"] + lists["nuswide81.txt"]
                + tiny + imagenet)
    lists["everyday.txt"] = merge_duplicates(everyday, normalise_tag, "everyday vocabulary")
    VOCAB.mkdir(exist_ok=True)
    for name, tags in lists.items():
        tags = list(dict.fromkeys(tags))
        (VOCAB / name).write_text("\n".join(tags) + "\n", encoding="utf-8")
        print(f"{name}: {len(tags)} tags")


if __name__ == "__main__":
    main()
