"""Derive the vocabularies in vocab/ from the real dataset files under ../shared/data.

    python scripts/make_vocab.py [--shared ../shared]

Writes vocab/nuswide81.txt (the 81 concepts), vocab/nuswide1k.txt (the 1,000 Flickr tags) and
vocab/corel5k.txt (the 374 Corel5k words), one tag per line, in the order of the source files.
"""

from __future__ import annotations

import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def read_lines(path: Path) -> list[str]:
    # The NUS-WIDE and Corel lists have CRLF endings and trailing blanks.
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    args = parser.parse_args()
    data = args.shared / "data"
    sources = {
        "nuswide81.txt": data / "nuswide" / "ConceptsList" / "Concepts81.txt",
        "nuswide1k.txt": data / "nuswide" / "NUS_WID_Tags" / "TagList1k.txt",
        "corel5k.txt": data / "corel5k" / "labels" / "words",
    }
    out_dir = ROOT / "vocab"
    out_dir.mkdir(exist_ok=True)
    for name, source in sources.items():
        tags = list(dict.fromkeys(read_lines(source)))
        (out_dir / name).write_text("\n".join(tags) + "\n", encoding="utf-8")
        print(f"{name}: {len(tags)} tags from {source}")


if __name__ == "__main__":
    main()
