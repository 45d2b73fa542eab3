"""`tagrank batch`: Parquet shards, failures named, resumable; in one process and on a local Ray."""

import json
import shutil

import pandas as pd
import pytest

from tagrank.batch import BatchJob, run_batch


@pytest.fixture
def library(tmp_path, photos):
    folder = tmp_path / "library"
    folder.mkdir()
    for i in range(7):
        name = ("chelsea", "coffee", "rocket")[i % 3]
        shutil.copy(photos[name], folder / f"{i}-{name}.jpg")
    (folder / "9-broken.jpg").write_bytes(b"not a photo")
    return folder


def _read(out):
    tags = pd.concat([pd.read_parquet(p) for p in sorted(out.glob("tags-*.parquet"))])
    failures = pd.concat([pd.read_parquet(p) for p in sorted(out.glob("failures-*.parquet"))])
    return tags, failures


def test_shards_failures_and_resume(cli, library, tmp_path):
    out = tmp_path / "out"
    result = cli("batch", library, "--out", out, "--shard-size", "3", "--top", "2", "--vocab", "everyday")
    assert result.code == 1 and "1 photo(s) could not be read" in result.err  # named, not fatal
    tags, failures = _read(out)
    assert sorted(p.name for p in out.glob("tags-*")) == ["tags-00000.parquet", "tags-00001.parquet", "tags-00002.parquet"]
    assert tags["image"].nunique() == 7 and len(tags) == 14 and list(failures["image"]) == [str(library / "9-broken.jpg")]
    cat = tags[tags["image"].str.endswith("0-chelsea.jpg")].sort_values("rank")["tag"].tolist()
    assert "cat" in " ".join(cat)
    (out / "tags-00001.parquet").unlink()  # as if killed before this shard was written
    again = cli("batch", library, "--out", out, "--shard-size", "3", "--top", "2", "--vocab", "everyday")
    assert "3 shards (2 already done)" in again.out and _read(out)[0].equals(tags)
    other = cli("batch", library, "--out", out, "--shard-size", "3", "--top", "4", "--vocab", "everyday")
    assert other.code == 2 and "top differ" in other.err
    # Shards ranked one way are not resumed another way; "auto", the default, is what the run used.
    approx = cli("batch", library, "--out", out, "--shard-size", "3", "--top", "2", "--vocab", "everyday",
                 "--search", "approx")
    assert approx.code == 2 and "search differ" in approx.err
    assert cli("batch", library, "--out", out, "--search", "fastest").code == 2
    exact = cli("batch", library / "0-chelsea.jpg", "--out", tmp_path / "exact", "--search", "exact", "--top", "2")
    assert exact.code == 0 and json.loads((tmp_path / "exact" / "batch.json").read_text())["search"] == "exact"


def test_on_a_local_ray_cluster_with_two_workers(library, tmp_path):
    ray = pytest.importorskip("ray")
    listing = tmp_path / "list.parquet"
    pd.DataFrame({"path": sorted(str(p) for p in library.iterdir())}).to_parquet(listing)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        summary = run_batch([str(listing)], BatchJob(str(tmp_path / "ray"), top=3), shard_size=2, workers=2, use_ray=True)
    finally:
        ray.shutdown()
    assert summary["shards"] == 4 and summary["tagged_now"] == 7 and summary["failed_now"] == 1
    local = run_batch([str(listing)], BatchJob(str(tmp_path / "local"), top=3), shard_size=2)
    ray_tags, _ = _read(tmp_path / "ray")
    local_tags, _ = _read(tmp_path / "local")
    assert local["tagged_now"] == 7
    pd.testing.assert_frame_equal(ray_tags.reset_index(drop=True), local_tags.reset_index(drop=True), atol=1e-4)


def test_a_shard_of_unreadable_photos_and_an_odd_file_name(cli, photos, tmp_path):
    """A shard where no photo decodes is written (its failures named) and the run completes; a file name that is
    not UTF-8 is written with its odd bytes as \\xNN, not lost."""
    folder = tmp_path / "odd"
    folder.mkdir()
    (folder / "0-broken.jpg").write_bytes(b"not a photo")
    shutil.copy(photos["chelsea"], bytes(folder) + b"/1-caf\xe9.jpg")
    out = tmp_path / "out"
    result = cli("batch", folder, "--out", out, "--shard-size", "1", "--top", "2")
    assert result.code == 1 and "1 photo(s) could not be read" in result.err
    tags, failures = _read(out)
    assert sorted(p.name for p in out.glob("tags-*")) == ["tags-00000.parquet", "tags-00001.parquet"]
    assert list(failures["image"]) == [str(folder / "0-broken.jpg")]
    assert set(tags["image"]) == {str(folder) + "/1-caf\\xe9.jpg"}
    assert cli("batch", folder, "--out", out, "--shard-size", "1", "--top", "2").code == 0  # resumed: all done


def test_options_are_checked_before_the_run_is_recorded(cli, library, tmp_path):
    """A typo does not poison the output folder: the corrected command runs."""
    out = tmp_path / "out"
    for bad, needle in ((["--vocab", str(tmp_path / "typo.txt")], "not found"), (["--threshold", "nan"], "threshold"),
                        (["--model", str(tmp_path / "typo")], "typo")):
        result = cli("batch", library / "0-chelsea.jpg", "--out", out, *bad)
        assert result.code == 2 and needle in result.err and not (out / "batch.json").exists()
    assert cli("batch", library / "0-chelsea.jpg", "--out", out, "--threshold", "0.1").code == 0


def test_an_edited_vocabulary_file_or_manifest_is_not_resumed(cli, library, tmp_path):
    vocab, out = tmp_path / "vocab.txt", tmp_path / "out"
    vocab.write_text("dog\nsky\n")
    args = ("batch", library / "0-chelsea.jpg", library / "1-coffee.jpg", "--out", out, "--shard-size", "1",
            "--vocab", vocab)
    assert cli(*args).code == 0
    (out / "tags-00001.parquet").unlink()
    vocab.write_text("rocket\n")  # same path, other tags
    result = cli(*args)
    assert result.code == 2 and "vocab_sha256 differ" in result.err
    for damaged in ("{broken", "[1]"):
        (out / "batch.json").write_text(damaged)
        result = cli(*args)
        assert result.code == 2 and "not a tagrank batch manifest" in result.err and "start over" in result.err
