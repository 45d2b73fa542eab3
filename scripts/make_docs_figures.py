"""Draw the pictures of README.md and docs/ (committed as PNG; rerun after changing what they show).

    python scripts/make_docs_figures.py

docs/method.png: a photo goes through the CNN, which emits the matrix A(x); every tag's vector w of any
vocabulary is scored by ‖A(x) w‖, smallest first, and the confidence curve orders what the user reads.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

BOXES = [  # (x, y, width, height, title, detail)
    (0.2, 2.2, 1.9, 1.2, "photo", "the whole photo,\naspect kept"),
    (2.7, 2.2, 2.3, 1.2, "CNN", "EfficientNet-Lite0\n(ImageNet, frozen)"),
    (5.6, 2.2, 2.6, 1.2, "A(x): k×d", "learned rows + ImageNet\nclassifier block + name row"),
    (0.2, 0.2, 2.8, 1.2, "any vocabulary", "'kitten', 'espresso',\n'#nofilter', ..."),
    (3.6, 0.2, 2.0, 1.2, "label encoder", "MiniLM vectors w\n(+ WordNet names)"),
    (6.2, 0.2, 2.0, 1.2, "‖A(x) w‖", "small = relevant"),
    (8.8, 0.2, 2.2, 1.2, "top tags", "ordered by\nconfidence"),
]
ARROWS = [((2.1, 2.8), (2.7, 2.8)), ((5.0, 2.8), (5.6, 2.8)), ((3.0, 0.8), (3.6, 0.8)), ((5.6, 0.8), (6.2, 0.8)),
          ((6.9, 2.2), (7.2, 1.4)), ((8.2, 0.8), (8.8, 0.8))]


def method_figure(path: Path) -> None:
    fig, ax = plt.subplots(figsize=(11, 3.7))
    for x, y, w, h, title, detail in BOXES:
        ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.05", facecolor="#eef3fb", edgecolor="#3566a8"))
        ax.text(x + w / 2, y + h * 0.72, title, ha="center", va="center", fontsize=12, weight="bold")
        ax.text(x + w / 2, y + h * 0.32, detail, ha="center", va="center", fontsize=9)
    for start, end in ARROWS:
        ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=14, color="#3566a8"))
    ax.set_xlim(0, 11.2)
    ax.set_ylim(0, 3.6)
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})  # no version stamp: reruns give the same bytes
    plt.close(fig)


def main() -> None:
    out = ROOT / "docs" / "method.png"
    method_figure(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
