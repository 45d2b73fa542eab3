"""Hostile inputs (issue 14): every failure is one clear line, and nothing good is lost."""

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from tagrank.output import write_results
from tests.conftest import assert_one_error

ODD = "bad\udcffname.jpg"  # how Python holds the file name b"bad\xffname.jpg"


def _records():
    tags = [{"rank": 1, "tag": "cat", "score": 0.5, "confidence": 0.9}]
    return [{"image": f"dir/{ODD}", "tags": tags}, {"image": "dir/good.jpg", "tags": tags}]


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv", "parquet"])
def test_non_utf8_file_names_are_written_and_the_others_kept(tmp_path, fmt):
    out = tmp_path / f"r.{fmt}"
    write_results(iter(_records()), fmt, out)
    if fmt == "parquet":
        images = list(pd.read_parquet(out)["image"])
    elif fmt == "csv":
        images = list(pd.read_csv(out)["image"])
    else:
        text = out.read_text(encoding="utf-8")
        records = json.loads(text) if fmt == "json" else [json.loads(line) for line in text.splitlines()]
        images = [r["image"] for r in records]
        assert os.fsencode(images[0]) == b"dir/bad\xffname.jpg"  # JSON keeps the exact bytes
    assert images[1] == "dir/good.jpg" and images[0].startswith("dir/bad")
    if fmt in ("csv", "parquet"):
        assert images[0] == "dir/bad\\xffname.jpg"


# -- model files -----------------------------------------------------------------------------------

def _model_copy(tmp_path):
    import shutil

    from tagrank.tagger import DEFAULT_MODEL

    model = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL, model)
    return model


def test_weights_that_are_not_safetensors_are_named_so(cli, tmp_path):
    import pickle

    import torch

    model = tmp_path / "model"
    model.mkdir()
    photo = Path(__file__).resolve().parent.parent / "examples" / "cat.jpg"
    for content in (b"", pickle.dumps({"a": 1}), None):
        if content is None:
            torch.save({"a": torch.zeros(2)}, model / "model.safetensors")
        else:
            (model / "model.safetensors").write_bytes(content)
        assert_one_error(cli("rank", photo, "--model", model), "not a safetensors model file")


def test_a_safetensors_header_that_starts_like_a_pickle_loads(tmp_path):
    import torch

    from tagrank.model import load_tensors, save_tensors

    # the header's length is the file's first 8 bytes, little-endian: 0x80 first, as a pickle starts
    path = tmp_path / "weights.safetensors"
    for padding in range(300):
        save_tensors(path, {"a": torch.arange(3.0)}, {"note": "x" * padding})
        if path.read_bytes()[:1] == b"\x80":
            break
    assert path.read_bytes()[:1] == b"\x80"
    tensors, meta = load_tensors(path)
    assert torch.equal(tensors["a"], torch.arange(3.0)) and meta["note"].startswith("x")


def test_description_without_method_and_wrong_sizes_are_named(cli, tmp_path):
    import json

    from safetensors.torch import load_file, save_file

    photo = Path(__file__).resolve().parent.parent / "examples" / "cat.jpg"
    model = _model_copy(tmp_path)
    weights = model / "model.safetensors"
    tensors = load_file(weights)
    from tagrank.model import load_tensors

    meta = load_tensors(weights)[1]
    save_file(tensors, weights, metadata={"tagrank": json.dumps({k: v for k, v in meta.items() if k != "method"})})
    assert_one_error(cli("rank", photo, "--model", model), "lacks the field 'method'")
    tensors["head.0.bias"] = tensors["head.0.bias"][:7]
    save_file(tensors, weights, metadata={"tagrank": json.dumps(meta)})
    result = cli("rank", photo, "--model", model)
    assert_one_error(result, "size mismatch for head.0.bias")
    assert "torch.Size([7])" in result.err


# -- outputs ---------------------------------------------------------------------------------------

def _read_only(monkeypatch, folder: Path):
    """Writing inside ``folder`` fails as on a read-only mount (tests may run as root, who could write)."""
    import tempfile

    for name in ("mkstemp", "mkdtemp"):
        real = getattr(tempfile, name)

        def refuse(*a, _real=real, **k):
            if Path(k.get("dir", "")) == folder or folder in Path(k.get("dir", "/")).parents:
                raise PermissionError(13, "Permission denied", str(k.get("dir")))
            return _real(*a, **k)
        monkeypatch.setattr(tempfile, name, refuse)


def test_output_locations_are_checked_before_the_work(cli, tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    (tmp_path / "photo.jpg").write_bytes(b"x")
    (tmp_path / "vocab.txt").write_text("cat\ndog\n")
    _read_only(monkeypatch, ro)
    assert_one_error(cli("index", "build", "--vocab", tmp_path / "vocab.txt", "--out", ro / "idx"),
                     f"cannot write output folder {ro / 'idx'}", code=1)  # the operating system's failure
    assert_one_error(cli("train", "folder", "--root", tmp_path, "--out", ro / "run"),
                     f"cannot write output folder {ro / 'run'}", code=1)
    assert_one_error(cli("train", "folder", "--root", tmp_path, "--out", tmp_path / "photo.jpg"), "is an existing file")
    assert_one_error(cli("train", "folder", "--root", tmp_path, "--out", tmp_path / "run", "--cache-dir", ro / "c"),
                     f"cannot write output folder {ro / 'c'}", code=1)
    unrelated = tmp_path / "unrelated"
    unrelated.mkdir()
    (unrelated / "notes.txt").write_text("mine")
    import tagrank.evaluation.protocols

    monkeypatch.setattr(tagrank.evaluation.protocols, "evaluate",
                        lambda *a, **k: pytest.fail("evaluated before checking --out"))
    for out, needle, code in ((ro / "rep", "cannot write output folder", 1), (unrelated, "refusing to overwrite", 2)):
        assert_one_error(cli("eval", "corel5k", "--root", tmp_path, "--method", "conse", "--out", out), needle, code)


def test_full_disk_is_one_line_and_the_previous_files_stay(cli, tmp_path, monkeypatch):
    import errno

    from tagrank.labels.index import LabelIndex
    from tagrank.output import write_results

    (tmp_path / "vocab.txt").write_text("cat\ndog\n")
    assert cli("index", "build", "--vocab", tmp_path / "vocab.txt", "--out", tmp_path / "idx").code == 0
    (tmp_path / "r.json").write_text("previous")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "fsync", full)
    (tmp_path / "vocab.txt").write_text("cat\ndog\nbird\n")
    result = cli("index", "build", "--vocab", tmp_path / "vocab.txt", "--out", tmp_path / "idx")
    assert_one_error(result, f"cannot write {tmp_path / 'idx'}: no space left on device", code=1)
    monkeypatch.undo()
    assert len(LabelIndex.load(tmp_path / "idx")) == 2  # the old index, whole
    monkeypatch.setattr(os, "fsync", full)
    from tagrank.errors import TagrankError

    with pytest.raises(TagrankError, match="cannot write .*r.json: no space left on device"):
        write_results(iter(_records()), "json", tmp_path / "r.json")
    result = cli("rank", "examples/cat.jpg", "--format", "json", "--out", tmp_path / "r.json")
    assert result.code == 1 and result.err.startswith("error: cannot write")  # the system's failure: status 1
    assert (tmp_path / "r.json").read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx", "r.json", "vocab.txt"]  # no temporary left


def test_stale_temporaries_of_dead_writers_are_removed_live_ones_kept(tmp_path):
    from tagrank.atomic import atomic_directory, write_text_atomic

    dead, live = 99999999, os.getppid()
    (tmp_path / f".r.json.{dead}-abc.tmp").write_text("partial")
    (tmp_path / f".r.json.{live}-abc.tmp").write_text("someone is writing this")
    (tmp_path / ".other.json.1-abc.tmp").write_text("not ours")
    (tmp_path / f".idx.{dead}-abc.tmp").mkdir()
    write_text_atomic(tmp_path / "r.json", "{}")
    with atomic_directory(tmp_path / "idx", "manifest.json") as folder:
        (folder / "manifest.json").write_text("{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".other.json.1-abc.tmp", f".r.json.{live}-abc.tmp", "idx", "r.json"]


def test_replacing_an_index_is_atomic_and_a_torn_replacement_recovers(cli, tmp_path):
    import shutil

    (tmp_path / "v.txt").write_text("cat\ndog\n")
    idx = tmp_path / "idx"
    assert cli("index", "build", "--vocab", tmp_path / "v.txt", "--out", idx).code == 0
    (tmp_path / "v.txt").write_text("cat\ndog\nbird\n")
    assert cli("index", "build", "--vocab", tmp_path / "v.txt", "--out", idx).code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx", "v.txt"]
    # a run without atomic exchange killed between its two renames: the path empty, the old copy aside
    aside = tmp_path / ".idx.99999999-abc.old"
    aside.mkdir()
    shutil.move(idx, aside / "x")
    info = cli("index", "info", idx)
    assert info.code == 0 and json.loads(info.out)["count"] == 3 and "checksums" in info.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx", "v.txt"]


def test_index_info_verifies_the_files(cli, tmp_path):
    (tmp_path / "v.txt").write_text("cat\ndog\n")
    idx = tmp_path / "idx"
    assert cli("index", "build", "--vocab", tmp_path / "v.txt", "--out", idx).code == 0
    faiss_file = idx / "labels.faiss"
    faiss_file.write_bytes(faiss_file.read_bytes()[:-8])
    assert_one_error(cli("index", "info", idx), "does not match its checksum")
    assert cli("index", "build", "--vocab", tmp_path / "v.txt", "--out", idx).code == 0
    (idx / "labels.parquet").unlink()
    assert_one_error(cli("index", "info", idx), "missing labels.parquet")
    (idx / "manifest.json").write_text("[1, 2]")
    assert_one_error(cli("index", "info", idx), "a JSON list, not an object")
    assert_one_error(cli("rank", tmp_path / "v.txt", "--index", idx), "a JSON list, not an object")


def test_ctrl_c_is_one_line_exit_130_and_no_output(tmp_path, photos):
    import signal
    import subprocess
    import sys
    import time

    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(3000):
        (folder / f"{i}.jpg").symlink_to(photos["coffee"])
    out = tmp_path / "r.jsonl"
    # A shell's background job inherits SIGINT ignored, and Python then keeps ignoring it: restore the
    # default so that the child is interrupted as in a terminal.
    process = subprocess.Popen([sys.executable, "-m", "tagrank.cli", "rank", folder, "--format", "jsonl", "--out", out,
                                "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".r.jsonl.*.tmp")) and time.monotonic() < deadline:  # tagging has begun
        time.sleep(0.05)
    time.sleep(0.5)
    assert process.poll() is None, "the run ended before it could be interrupted"
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert err.strip().splitlines()[-1] == "error: interrupted" and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["many"]  # no partial output, no temporary


def test_empty_cells_are_no_tag_and_no_photo(cli, tmp_path, photos):
    pd.DataFrame({"tag": ["dog", None, "cat"]}).to_parquet(tmp_path / "v.parquet")
    result = cli("rank", photos["chelsea"], "--vocab", tmp_path / "v.parquet", "--top", "5", "--format", "json")
    assert result.code == 0 and sorted(t["tag"] for t in json.loads(result.out)[0]["tags"]) == ["cat", "dog"]
    pd.DataFrame({"path": [str(photos["chelsea"]), None]}).to_parquet(tmp_path / "list.parquet")
    result = cli("batch", tmp_path / "list.parquet", "--out", tmp_path / "out", "--top", "1")
    assert result.code == 1 and "1 row(s) have no path (the first: row 2)" in result.err and "nan" not in result.err
    assert pd.read_parquet(tmp_path / "out" / "tags-00000.parquet")["image"].tolist() == [str(photos["chelsea"])]


@pytest.mark.parametrize("where,needle", [("folder", "is a folder"), ("/dev/zero", "is not a regular file")])
def test_a_vocabulary_that_is_not_a_file_is_named_so(cli, tmp_path, photos, where, needle):
    path = tmp_path if where == "folder" else where
    assert_one_error(cli("rank", photos["chelsea"], "--vocab", path), needle)


def test_a_link_loop_is_named_as_one(cli, tmp_path, photos):
    import shutil

    (tmp_path / "a.jpg").symlink_to(tmp_path / "b.jpg")
    (tmp_path / "b.jpg").symlink_to(tmp_path / "a.jpg")
    shutil.copy(photos["chelsea"], tmp_path / "cat.jpg")
    result = cli("rank", tmp_path, "--top", "1")
    assert result.code == 1 and "cat.jpg" in result.out and "cannot decode" not in result.out + result.err
    assert "a.jpg: symlink loop" in result.err or "symbolic links" in result.out + result.err


def test_control_characters_never_reach_the_terminal(cli, tmp_path, photos):
    """An escape sequence in a file name or a tag is printed escaped (it could clear the screen, retitle the window)."""
    import shutil

    evil = "\x1b[2J\x1b]0;pwned\x07"
    shutil.copy(photos["chelsea"], tmp_path / f"cat{evil}.jpg")
    (tmp_path / "v.txt").write_text(f"cat\ndog{evil}\n")
    result = cli("rank", tmp_path / f"cat{evil}.jpg", tmp_path / f"gone{evil}.jpg", "--vocab", tmp_path / "v.txt")
    assert result.code == 1 and "\x1b" not in result.out + result.err and "\x07" not in result.out + result.err
    assert "\\x1b[2J" in result.out and "\\x1b[2J" in result.err
