"""Shared fixtures: tiny word-vector files and the CLI runner. Nothing here needs the network or ../shared."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"

needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data not present")


def write_word2vec_text(path: Path, words: dict[str, list[float]], header: bool = True) -> Path:
    dim = len(next(iter(words.values())))
    lines = [f"{len(words)} {dim}"] if header else []
    lines += [w + " " + " ".join(f"{x:.6f}" for x in v) for w, v in words.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def tiny_vectors_file(tmp_path: Path) -> Path:
    """A 4-d word2vec text file with case-sensitive words and a phrase token."""
    rng = np.random.default_rng(0)
    words = ["dog", "puppy", "cat", "New_York", "new", "york", "ice", "cream", "Sunset", "sunset"]
    return write_word2vec_text(tmp_path / "tiny.txt", {w: rng.normal(size=4).tolist() for w in words})


def assert_one_error(result, needle: str, code: int = 2) -> None:
    """Bad input: exit status 2 (the operating system's failure: 1) and exactly one ``error: ...`` line on stderr
    that names the problem."""
    assert result.code == code, result
    lines = result.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], result


class CliResult:
    def __init__(self, code: int, out: str, err: str):
        self.code, self.out, self.err = code, out, err

    def __repr__(self) -> str:
        return f"CliResult(code={self.code}, out={self.out[-500:]!r}, err={self.err[-500:]!r})"


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run ``tagrank ARGS`` in-process through the real entry point; returns code, stdout, stderr."""
    from tagrank.cli import main

    def run(*args: str) -> CliResult:
        monkeypatch.setattr(sys, "argv", ["tagrank", *map(str, args)])
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="session")
def photos(tmp_path_factory) -> dict[str, Path]:
    """Real photos from scikit-image's sample data, saved as JPEG (cat, coffee, astronaut, rocket...)."""
    from PIL import Image
    from skimage import data

    folder = tmp_path_factory.mktemp("photos")
    out = {}
    for name in ("chelsea", "coffee", "astronaut", "rocket", "camera", "horse", "hubble_deep_field", "immunohistochemistry"):
        array = getattr(data, name)()
        if array.dtype == bool:
            array = (array * 255).astype("uint8")
        out[name] = folder / f"{name}.jpg"
        Image.fromarray(array).convert("RGB").save(out[name], quality=90)
    return out


def synthetic_features(labels_matrix: np.ndarray, dim: int = 32, seed: int = 0, noise: float = 0.3) -> np.ndarray:
    """Features that carry their labels: the sum of one random prototype per label, plus noise."""
    rng = np.random.default_rng(seed)
    prototypes = rng.normal(size=(labels_matrix.shape[1], dim))
    return (labels_matrix @ prototypes + noise * rng.normal(size=(labels_matrix.shape[0], dim))).astype(np.float32)
