"""What `pip install .` ships: the package with its data (models, encoder table, WordNet table and licence) and the
named vocabularies from the top-level vocab/ folder, usable from the installed copy alone."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LEFT_OUT = {".git", "runs", "build", "dist", "tagrank.egg-info", "__pycache__", ".pytest_cache", ".cache", "out"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    source = tmp_path_factory.mktemp("source") / "tagrank"
    shutil.copytree(ROOT, source, ignore=lambda folder, names: [n for n in names if n in LEFT_OUT])
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(out), str(source)], capture_output=True, text=True)
    if built.returncode != 0:
        pytest.fail(f"pip wheel failed:\n{built.stderr[-2000:]}")
    return next(out.glob("tagrank-*.whl"))


def test_the_wheel_carries_the_vocabularies_and_the_package_data(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for vocabulary in sorted(p.name for p in (ROOT / "vocab").glob("*.txt")):
        assert f"tagrank/vocabularies/{vocabulary}" in names
    for data in ("tagrank/models/default/model.safetensors", "tagrank/models/default/model.json",
                 "tagrank/labels/encoders/tables/minilm.safetensors", "tagrank/labels/wordnet/imagenet_hierarchy.json",
                 "tagrank/labels/wordnet/LICENSE.txt", "tagrank/serve/page.html"):
        assert data in names


def test_the_installed_package_finds_its_vocabularies_without_the_source_tree(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    # the source checkout's editable install is taken off the import system: only the unpacked wheel is seen
    check = (f"import sys; sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f)]; "
             f"sys.path.insert(0, {str(site)!r}); "
             "import tagrank.labels.vocab as v; "
             f"assert v.__file__.startswith({str(site)!r}), v.__file__; "
             "print(' '.join(v.named_vocabularies()), len(v.load_vocabulary('everyday')))")
    ran = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr[-2000:]
    names, count = ran.stdout.rsplit(" ", 1)
    assert names.split() == sorted(p.stem for p in (ROOT / "vocab").glob("*.txt"))
    assert int(count) == len((ROOT / "vocab" / "everyday.txt").read_text(encoding="utf-8").split("\n")) - 1
