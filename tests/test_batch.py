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
