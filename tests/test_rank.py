import csv
import io
import json
import shutil

import pandas as pd
import pytest

from tagrank.errors import TagrankError
from tagrank.tagger import Tagger
from tests.conftest import assert_one_error


@pytest.fixture(scope="module")
def default_tagger():
    return Tagger.load()


def test_default_model_loads_with_its_vocabulary(default_tagger):
    assert default_tagger.name == "transform"
    assert default_tagger.meta["provenance"]["built_by"] == "scripts/build_default_model.py"
    assert len(default_tagger.default_tags) > 1000 and "sunset" in default_tagger.default_tags


def test_unseen_tags_rank_for_real_photos(default_tagger, photos):
    vocab = ["kitten", "cat", "espresso", "rocket", "astronaut", "zzqxw"]
    out = default_tagger.rank([photos["chelsea"]], vocab, top=6)
    assert out.oov == [] and out.failed == {}  # MiniLM has a vector for every string
    tags = [t["tag"] for t in out.results[0]["tags"]]
    assert len(tags) == 6 and set(tags[:2]) == {"cat", "kitten"}
    sure = [t["confidence"] for t in out.results[0]["tags"]]
    assert sure == sorted(sure, reverse=True)  # read top-down by confidence


def test_conse_is_training_free_and_sensible(photos):
    conse = Tagger.load(method="conse")
    out = conse.rank([photos["chelsea"], photos["coffee"]], ["cat", "espresso", "rocket", "beach"], top=1)
    assert [r["tags"][0]["tag"] for r in out.results] == ["cat", "espresso"]


def test_threshold_and_explain(default_tagger, photos):
    full = default_tagger.rank([photos["rocket"]], top=5, explain=True).results[0]["tags"]
    assert all(0 <= t["votes"] <= 100 for t in full)
    sure = [t["confidence"] for t in full]
    assert all(0 <= c <= 1 for c in sure) and sure == sorted(sure, reverse=True)
    kept = default_tagger.rank([photos["rocket"]], top=5, threshold=sure[2]).results[0]["tags"]
    assert [t["tag"] for t in kept] == [t["tag"] for t in full[:3]]


def test_label_scoring_model_ranks_only_training_labels(tmp_path, photos):
    from tests.test_train import small_config  # the toy trainer setup
    import numpy as np

    from tagrank.images.backbone import Backbone
    from tagrank.images.datasets import Dataset
    from tagrank.images.features import FeatureCache
    from tagrank.training.trainer import train
    from tagrank.labels.encoders.word_vectors import WordVectors

    names = ["chelsea", "coffee", "astronaut", "rocket"]
    labels = ["cat", "coffee", "person", "sky"]
    features = FeatureCache(Backbone("lite0"), tmp_path / "cache").get([str(photos[n]) for n in names], progress=False)
    data = Dataset("toy", names, features.paths, labels, np.eye(4, dtype=bool))
    config = small_config("bce", epochs=30)
    config.train.val_fraction = 0.0
    train(config, data, features, WordVectors.default(), tmp_path / "bce", progress=False)
    tagger = Tagger.load(tmp_path / "bce")
    out = tagger.rank([photos["chelsea"]], ["cat", "sky", "kitten"], top=3)
    assert [t["tag"] for t in out.results[0]["tags"]] == ["cat", "sky"] and out.oov == ["kitten"]
    with pytest.raises(TagrankError, match="training labels"):
        tagger.rank([photos["chelsea"]], ["kitten", "puppy"])
    with pytest.raises(TagrankError, match="--explain"):
        tagger.rank([photos["chelsea"]], ["cat"], explain=True)


# -- the command -----------------------------------------------------------------------------------

@pytest.fixture
def folder(tmp_path, photos):
    d = tmp_path / "photos"
    (d / "sub").mkdir(parents=True)
    shutil.copy(photos["chelsea"], d / "cat.jpg")
    shutil.copy(photos["coffee"], d / "sub" / "coffee.jpg")
    (d / "broken.jpg").write_bytes(b"not a jpeg")
    return d


def test_rank_formats(cli, folder, tmp_path):
    vocab = tmp_path / "v.txt"
    vocab.write_text("cat\nkitten\ncoffee\nespresso\nsky\n")
    good = [folder / "cat.jpg", folder / "sub" / "coffee.jpg"]
    table = cli("rank", *good, "--vocab", vocab, "--top", "2")
    assert table.code == 0 and "cat.jpg" in table.out and "distance" in table.out
    records = [json.loads(line) for line in cli("rank", *good, "--vocab", vocab, "--format", "jsonl").out.splitlines()]
    assert [len(r["tags"]) for r in records] == [5, 5] and records[0]["tags"][0]["rank"] == 1
    as_json = json.loads(cli("rank", *good, "--vocab", vocab, "--format", "json", "--top", "1").out)
    assert len(as_json) == 2 and set(as_json[0]["tags"][0]) == {"rank", "tag", "score", "confidence"}
    rows = list(csv.DictReader(io.StringIO(cli("rank", *good, "--vocab", vocab, "--format", "csv", "--top", "3").out)))
    assert len(rows) == 6 and rows[0].keys() == {"image", "rank", "tag", "score", "confidence"}
    result = cli("rank", *good, "--vocab", vocab, "--format", "parquet", "--out", tmp_path / "o.parquet")
    frame = pd.read_parquet(tmp_path / "o.parquet")
    assert result.code == 0 and len(frame) == 10 and list(frame.columns) == ["image", "rank", "tag", "score", "confidence"]
    explained = json.loads(cli("rank", good[0], "--vocab", vocab, "--format", "json", "--explain").out)
    assert "votes" in explained[0]["tags"][0]
    assert cli("rank", good[0], "--vocab", vocab, "--format", "parquet", "--explain", "--out", tmp_path / "e.parquet").code == 0
    assert "votes" in pd.read_parquet(tmp_path / "e.parquet").columns  # Parquet used to drop it


def test_rank_skips_and_reports_bad_images(cli, folder, tmp_path):
    result = cli("rank", folder, tmp_path / "missing.jpg", "--format", "jsonl", "--out", tmp_path / "o.jsonl")
    assert result.code == 1
    records = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert {r["image"].split("/")[-1]: ("tags" in r) for r in records} == {
        "broken.jpg": False, "cat.jpg": True, "coffee.jpg": True}
    assert "missing.jpg" in result.err and "broken.jpg" in result.err and "2 image(s) tagged" in result.err
    assert "Traceback" not in result.err


def test_rank_bad_inputs(cli, folder, tmp_path, photos):
    photo = folder / "cat.jpg"
    (tmp_path / "empty.txt").write_text("\n")
    (tmp_path / "empty_dir").mkdir()
    (tmp_path / "model").mkdir()
    assert_one_error(cli("rank", tmp_path / "empty_dir"), "no images")
    assert_one_error(cli("rank", photo, "--vocab", tmp_path / "empty.txt"), "empty vocabulary")
    assert_one_error(cli("rank", photo, "--model", tmp_path / "model"), "missing model.safetensors")
    assert_one_error(cli("rank", photo, "--top", "0"), "--top")
    assert_one_error(cli("rank", photo, "--threshold", "abc"), "--threshold")
    assert_one_error(cli("rank", photo, "--out", tmp_path / "empty_dir"), "is a directory")
    assert_one_error(cli("rank", photo, "--out", "/proc/nope/out.json"), "cannot write", code=1)
    assert_one_error(cli("rank", photo, "--format", "xml"), "--format")
    assert_one_error(cli("rank", photo, "--method", "bce"), "needs a trained model")


def test_rank_refuses_index_from_other_vectors(cli, folder, tmp_path):
    from tests.conftest import write_word2vec_text

    vectors = write_word2vec_text(tmp_path / "v.txt", {"cat": [1.0, 0.0], "dog": [0.0, 1.0]})
    (tmp_path / "vocab.txt").write_text("cat\ndog\n")
    assert cli("index", "build", "--vocab", tmp_path / "vocab.txt", "--out", tmp_path / "idx", "--vectors", vectors).code == 0
    assert_one_error(cli("rank", folder / "cat.jpg", "--index", tmp_path / "idx"), "2-d vectors")


def test_a_run_where_no_photo_decodes_names_each_photo(cli, tmp_path):
    """The default model with no decodable photo: each one named, exit 1, no internal error."""
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a photo")
    result = cli("rank", broken, tmp_path / "missing.jpg")
    assert result.code == 1 and "internal error" not in result.err
    assert "broken.jpg: cannot decode image" in result.out + result.err and "missing.jpg" in result.out + result.err
