import json

import numpy as np
import pytest

from tagrank.evaluation.protocols import write_score_file
from tests.conftest import assert_one_error
from tests.test_datasets import make_nuswide


@pytest.fixture
def nuswide(tmp_path):
    root = make_nuswide(tmp_path / "nus")
    gt = root / "Groundtruth" / "TrainTestLabels"
    (root / "ImageList" / "TrainImagelist.txt").write_text("a\\1.jpg\na\\2.jpg\n")
    (gt / "Labels_lake_Train.txt").write_text("1\n0\n")
    (gt / "Labels_sky_Train.txt").write_text("1\n1\n")
    return root


def test_eval_score_file_on_nuswide_layout(cli, nuswide, tmp_path):
    ids = ["actor/0001_1.jpg", "beach/0002_2.jpg", "beach/0003_3.jpg"]
    write_score_file(tmp_path / "s.parquet", ids, ["lake", "sky"], np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]))
    result = cli("eval", "nuswide", "--root", nuswide, "--scores", tmp_path / "s.parquet", "--k", "1",
                 "--out", tmp_path / "report")
    assert result.code == 0, result
    assert "prior" in result.out and "scores:s.parquet" in result.out
    report = json.loads((tmp_path / "report" / "metrics.json").read_text())
    given = report["methods"][1]
    assert given["top_k"]["1"]["O-P"] == pytest.approx(2 / 3) and given["mAP"] == pytest.approx(1.0)
    assert report["images"]["evaluated"] == 3 and report["images"]["handling"].startswith("kept")
    for name in ("per_class.csv", "per_class_ap.png", "pr_at_k.png"):
        assert (tmp_path / "report" / name).stat().st_size > 0
    # zsl: the concepts are the unseen labels by default; --filter-empty drops images without positives
    zsl = cli("eval", "nuswide", "--root", nuswide, "--scores", tmp_path / "s.parquet", "--protocol", "zsl",
              "--k", "1", "--filter-empty")
    assert zsl.code == 0 and "protocol zsl" in zsl.out and "dropped" in zsl.out


def test_eval_bad_inputs(cli, nuswide, tmp_path):
    ids = ["actor/0001_1.jpg", "beach/0002_2.jpg", "beach/0003_3.jpg"]
    write_score_file(tmp_path / "short.parquet", ids[:2], ["lake", "sky"], np.zeros((2, 2)))
    write_score_file(tmp_path / "nan.parquet", ids, ["lake", "sky"], np.array([[0, 1], [np.nan, 0], [0, 0]]))
    write_score_file(tmp_path / "ok.parquet", ids, ["lake", "sky"], np.zeros((3, 2)))
    write_score_file(tmp_path / "nosky.parquet", ids, ["lake"], np.zeros((3, 1)))
    (tmp_path / "unseen.txt").write_text("lake\nvolcano\n")
    base = ("eval", "nuswide", "--root", nuswide, "--k", "1")
    assert_one_error(cli(*base, "--scores", tmp_path / "short.parquet"), "1 missing")
    assert_one_error(cli(*base, "--scores", tmp_path / "nan.parquet"), "NaN")
    assert_one_error(cli(*base, "--scores", tmp_path / "nosky.parquet"), "sky")
    assert_one_error(cli("eval", "nuswide", "--root", nuswide, "--scores", tmp_path / "ok.parquet"), "K = 3")
    assert_one_error(cli(*base, "--scores", tmp_path / "ok.parquet", "--protocol", "zsl", "--unseen", tmp_path / "unseen.txt"),
              "volcano")
    assert_one_error(cli(*base, "--scores", tmp_path / "ok.parquet", "--protocol", "gzsl"), "Test_Tags1k.dat")
    assert_one_error(cli(*base), "nothing to evaluate")
    (nuswide / "ConceptsList" / "Concepts81.txt").unlink()
    assert_one_error(cli(*base, "--scores", tmp_path / "ok.parquet"), "Concepts81.txt")


def test_eval_corel_layout_with_models_all_protocols(cli, photos, tmp_path):
    """A tiny Corel5k-layout dataset of real photos: train two methods, evaluate in all three protocols."""
    import shutil

    root = tmp_path / "corel"
    (root / "labels").mkdir(parents=True)
    (root / "images" / "train").mkdir(parents=True)
    (root / "images" / "test").mkdir(parents=True)
    words = ["cat", "coffee", "person", "sky", "horse"]
    (root / "labels" / "words").write_text("\n".join(words) + "\n")
    train = {"chelsea": [1], "coffee": [2], "astronaut": [3], "rocket": [4], "horse": [5], "camera": [3]}
    (root / "labels" / "training_label").write_text(
        "".join(f"{i} {' '.join(map(str, t))}\n" for i, t in enumerate(train.values())))
    (root / "labels" / "test_label").write_text("100 1\n101 2\n102 4\n")
    for i, name in enumerate(train):
        shutil.copy(photos[name], root / "images" / "train" / f"{i}.jpeg")
    for i, name in zip((100, 101, 102), ("chelsea", "coffee", "rocket")):
        shutil.copy(photos[name], root / "images" / "test" / f"{i}.jpeg")
    (tmp_path / "unseen.txt").write_text("horse\n")
    cache = tmp_path / "cache"
    for method, extra in (("transform", ("--k", "4")), ("bce", ())):
        result = cli("train", "corel5k", "--root", root, "--out", tmp_path / method, "--method", method, "--epochs", "2",
                     *extra, "--unseen", tmp_path / "unseen.txt", "--cache-dir", cache, "--no-progress")
        assert result.code == 0, result
        assert json.loads((tmp_path / method / "model.json").read_text())["unseen"] == ["horse"]
    for protocol in ("conventional", "zsl", "gzsl"):
        result = cli("eval", "corel5k", "--root", root, "--compare", tmp_path / "transform", tmp_path / "bce",
                     "--protocol", protocol, "--unseen", tmp_path / "unseen.txt", "--k", "1", "--cache-dir", cache,
                     "--no-progress")
        assert result.code == 0, result
        assert "transform" in result.out and "bce" in result.out
    zsl = cli("eval", "corel5k", "--root", root, "--compare", tmp_path / "transform", tmp_path / "bce",
              "--protocol", "zsl", "--unseen", tmp_path / "unseen.txt", "--k", "1", "--cache-dir", cache, "--no-progress")
    assert "n/a: bce cannot rank" in zsl.out
    # another unseen list, which the models were trained on: not zero-shot, so refused unless --allow-seen
    (tmp_path / "other.txt").write_text("sky\n")
    base = ("eval", "corel5k", "--root", root, "--model", tmp_path / "transform", "--protocol", "zsl",
            "--unseen", tmp_path / "other.txt", "--k", "1", "--cache-dir", cache, "--no-progress")
    assert_one_error(cli(*base), "was trained on 1 of the unseen labels (sky)")
    allowed = cli(*base, "--allow-seen", "--out", tmp_path / "report")
    assert allowed.code == 0 and "NOT ZERO-SHOT (--allow-seen): transform was trained on 1" in allowed.out
    assert json.loads((tmp_path / "report" / "metrics.json").read_text())["trained_on_unseen_labels"] == {
        "transform": ["sky"]}
    # photos missing on disk: the count of photos without a positive label is over those evaluated
    (root / "images" / "test" / "102.jpeg").unlink()
    (root / "labels" / "test_label").write_text("100 1\n101 2\n102 4\n103\n")
    partial = cli("eval", "corel5k", "--root", root, "--model", tmp_path / "transform", "--k", "1",
                  "--cache-dir", cache, "--no-progress")
    assert partial.code == 0 and "2 images (0 without a positive label: kept) · 2 missing on disk" in partial.out


def test_label_accuracy_scores_only_the_chosen_classes_photos(monkeypatch):
    import tagrank.evaluation.protocols as ev
    from tagrank.images.datasets import Dataset
    from tagrank.errors import TagrankError

    data = Dataset("toy", ["a", "b", "c"], ["/a", "/b", "/c"], ["cat", "dog", "fish"],
                   np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], bool))
    own = {"/a": "cat", "/b": "dog", "/c": "fish"}
    # A 'feature' is the photo's path; every photo ranks 'fish' first, then its own label.
    monkeypatch.setattr(ev, "_features", lambda tagger, paths, cache_dir, progress, runtime: (paths, paths))
    monkeypatch.setattr(ev, "model_scores", lambda tagger, paths, labels: (
        np.array([[1.0 if t == "fish" else 0.5 if t == own[p] else 0.0 for t in labels] for p in paths]), None, ""))
    assert ev.label_accuracy(None, data, ["cat", "dog"]) == {1: 1.0, 5: 1.0}  # ZSL: photos of cat and dog only
    gzsl = ev.label_accuracy(None, data, ["cat", "dog", "fish"], photos_of=["cat", "dog"], ks=(1, 2))
    assert gzsl == {1: 0.0, 2: 1.0}  # the same two photos, 'fish' now ranked above their own labels
    with pytest.raises(TagrankError, match="cannot be scored"):
        ev.label_accuracy(None, data, ["cat"], photos_of=["dog"])


def test_score_file_columns_that_are_not_numbers_or_infinite(cli, nuswide, tmp_path):
    import pandas as pd

    ids = ["actor/0001_1.jpg", "beach/0002_2.jpg", "beach/0003_3.jpg"]
    base = ("eval", "nuswide", "--root", nuswide, "--scores", tmp_path / "s.parquet", "--k", "1")
    pd.DataFrame({"image": ids, "lake": ["0.9", "high", "0.1"], "sky": [0.1, 0.8, 0.4]}).to_parquet(tmp_path / "s.parquet")
    assert_one_error(cli(*base), "column 'lake' is not numeric")
    pd.DataFrame({"image": ids, "lake": [np.inf, 0.2, 0.1], "sky": [0.1, 0.8, -np.inf]}).to_parquet(tmp_path / "s.parquet")
    result = cli(*base)
    assert result.code == 0 and "warning: score file" in result.err and "infinite scores in 2 column(s)" in result.err
