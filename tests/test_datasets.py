import numpy as np
import pandas as pd
import pytest

from tagrank.images.datasets import filter_tags, load_dataset, split_tags
from tagrank.errors import TagrankError
from tests.conftest import SHARED, needs_shared


def test_split_tags_separators():
    assert split_tags("sky sea  sun") == ["sky", "sea", "sun"]
    assert split_tags("ice cream, new york,sky") == ["ice cream", "new york", "sky"]
    assert split_tags("a|b|a") == ["a", "b"]
    assert split_tags("") == []


def test_csv_adapter_with_split_and_relative_paths(tmp_path):
    pd.DataFrame({"path": ["a.jpg", "b.jpg", "c.jpg"], "tags": ["sky sea", "sky", "cat|dog"],
                  "split": ["train", "train", "test"]}).to_csv(tmp_path / "metadata.csv", index=False)
    train = load_dataset("csv", tmp_path, "train")
    assert train.paths == [str(tmp_path / "a.jpg"), str(tmp_path / "b.jpg")]
    assert train.labels == ["sea", "sky"] and train.matrix.tolist() == [[True, True], [False, True]]
    assert load_dataset("csv", tmp_path / "metadata.csv", "test").tags_of(0) == ["cat", "dog"]


def test_folder_adapter(tmp_path):
    for name in ("1-sky_sea.jpg", "2-cat.jpg", "notags.jpg"):
        (tmp_path / name).write_bytes(b"x")
    data = load_dataset("folder", tmp_path, "train")
    assert data.ids == ["1", "2"] and data.tags_of(0) == ["sea", "sky"] and data.tags_of(1) == ["cat"]


def make_corel(root):
    (root / "labels").mkdir(parents=True)
    (root / "labels" / "words").write_text("city\r\nsky\r\nsun\r\n")
    (root / "labels" / "training_label").write_text("1000 1 2  \r\n1001 3 \r\n")
    (root / "labels" / "test_label").write_text("2000 2 3 \r\n")
    return root


def test_corel5k_adapter(tmp_path):
    root = make_corel(tmp_path)
    train = load_dataset("corel5k", root, "train")
    assert train.labels == ["city", "sky", "sun"] and train.ids == ["1000", "1001"]
    assert train.tags_of(0) == ["city", "sky"] and train.paths[1].endswith("images/train/1001.jpeg")
    test = load_dataset("corel5k", root, "test")
    assert test.tags_of(0) == ["sky", "sun"] and test.paths[0].endswith("images/test/2000.jpeg")
    (root / "labels" / "test_label").write_text("2000 2 9\n")
    with pytest.raises(TagrankError, match="out of range"):
        load_dataset("corel5k", root, "test")


def make_nuswide(root, concepts=("lake", "sky")):
    (root / "ConceptsList").mkdir(parents=True)
    (root / "ConceptsList" / "Concepts81.txt").write_bytes(b"\r\n".join(c.encode() for c in concepts) + b"\r\n")
    (root / "ImageList").mkdir()
    (root / "ImageList" / "TestImagelist.txt").write_text("actor\\0001_1.jpg\nbeach\\0002_2.jpg\nbeach\\0003_3.jpg\n")
    gt = root / "Groundtruth" / "TrainTestLabels"
    gt.mkdir(parents=True)
    (gt / "Labels_lake_Test.txt").write_text("1\r\n-1130179\r\n0\r\n")  # the release's corrupt value
    (gt / "Labels_sky_Test.txt").write_text("0\n1\n1\n")
    return root


def test_nuswide_adapter_crlf_backslashes_corrupt_value(tmp_path):
    data = load_dataset("nuswide", make_nuswide(tmp_path), "test")
    assert data.labels == ["lake", "sky"]
    assert data.ids == ["actor/0001_1.jpg", "beach/0002_2.jpg", "beach/0003_3.jpg"]
    assert data.paths[0] == str(tmp_path / "Flickr" / "actor" / "0001_1.jpg")
    assert data.matrix.tolist() == [[True, False], [False, True], [False, True]]
    assert len(data.only_present()) == 0  # no images on disk: all reported missing


def test_nuswide_missing_file_is_named(tmp_path):
    root = make_nuswide(tmp_path)
    (root / "Groundtruth" / "TrainTestLabels" / "Labels_sky_Test.txt").unlink()
    with pytest.raises(TagrankError, match="Labels_sky_Test.txt"):
        load_dataset("nuswide", root, "test")


def test_filter_tags_unseen_min_images_digits(tmp_path):
    root = make_corel(tmp_path)
    data = load_dataset("corel5k", root, "train")
    out = filter_tags(data, unseen=["SUN"])
    assert out.labels == ["city", "sky"] and len(out) == 1  # image 1001 had only 'sun'
    assert filter_tags(data, min_images=1, exclude=["city"]).labels == ["sky", "sun"]
    with pytest.raises(TagrankError, match="not in the label set"):
        filter_tags(data, unseen=["zebra"])


@needs_shared
def test_real_corel5k_and_nuswide_metadata():
    corel = load_dataset("corel5k", SHARED / "corel5k", "train")
    assert (len(corel), len(corel.labels)) == (4500, 374)
    nus = load_dataset("nuswide", SHARED / "nuswide", "test")
    assert nus.matrix.shape == (107859, 81)
    assert nus.matrix[:, nus.labels.index("lake")].dtype == np.bool_


def make_tinyimagenet(root):
    """Tiny ImageNet's layout with 3 classes, 2 training and 1 validation photo each (empty files)."""
    wnids = ["n01", "n02", "n03"]
    (root / "wnids.txt").write_text("\n".join(wnids) + "\n")
    (root / "words.txt").write_text("n01\tgoldfish, Carassius auratus\nn02\tEgyptian cat\nn03\tgolf cart, golfcart\n"
                                    "n99\tunused, other\n")
    for w in wnids:
        (root / "train" / w / "images").mkdir(parents=True)
        (root / "train" / w / f"{w}_boxes.txt").write_text("")
        for i in range(2):
            (root / "train" / w / "images" / f"{w}_{i}.JPEG").write_bytes(b"x")
    (root / "val" / "images").mkdir(parents=True)
    lines = []
    for i, w in enumerate(wnids):
        (root / "val" / "images" / f"val_{i}.JPEG").write_bytes(b"x")
        lines.append(f"val_{i}.JPEG\t{w}\t0\t0\t63\t63")
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    (root / "zsl_unseen.txt").write_text("n03\n")
    return root


def test_tinyimagenet_adapter_names_splits_and_wordnet_ids(tmp_path):
    root = make_tinyimagenet(tmp_path)
    train = load_dataset("tinyimagenet", root, "train")
    assert train.labels == ["goldfish", "Egyptian cat", "golf cart"]  # the first name of each synonym list
    assert len(train) == 6 and train.matrix.sum(axis=1).tolist() == [1] * 6 and train.tags_of(2) == ["Egyptian cat"]
    assert train.paths[0].endswith("train/n01/images/n01_0.JPEG")  # the *_boxes.txt files are not photos
    test = load_dataset("tinyimagenet", root, "test")  # the labelled val photos
    assert test.ids == ["val_0", "val_1", "val_2"] and test.tags_of(2) == ["golf cart"]
    assert train.resolve_aliases(["n03", "goldfish"]) == ["golf cart", "goldfish"]
    held_out = filter_tags(train, unseen=train.resolve_aliases(["n03"]))
    assert held_out.labels == ["goldfish", "Egyptian cat"] and len(held_out) == 4
    (root / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn77\t0\t0\t1\t1\n")
    with pytest.raises(TagrankError, match="n77"):
        load_dataset("tinyimagenet", root, "test")


def test_imagefolder_adapter_folder_names_names_file_and_splits(tmp_path):
    for split, classes in (("train", ["cat", "golden_retriever"]), ("val", ["cat"])):
        for c in classes:
            (tmp_path / split / c / "sub").mkdir(parents=True)
            (tmp_path / split / c / "a.jpg").write_bytes(b"x")
            (tmp_path / split / c / "sub" / "b.png").write_bytes(b"x")
            (tmp_path / split / c / "notes.txt").write_text("not a photo")
    train = load_dataset("imagefolder", tmp_path, "train")
    assert train.labels == ["cat", "golden_retriever"] and len(train) == 4 and train.tags_of(3) == ["golden_retriever"]
    assert len(load_dataset("imagefolder", tmp_path, "test")) == 2  # val/ is the test split
    (tmp_path / "names.txt").write_text("golden_retriever\tgolden retriever, retriever\n")
    named = load_dataset("imagefolder", tmp_path, "train")
    assert named.labels == ["cat", "golden retriever"] and named.resolve_aliases(["golden_retriever"]) == ["golden retriever"]
    (tmp_path / "names.txt").write_text("cat\tpet\ngolden_retriever\tpet\n")
    with pytest.raises(TagrankError, match="share the name"):
        load_dataset("imagefolder", tmp_path, "train")


def test_merged_datasets_know_only_their_own_labels():
    from tagrank.images.datasets import Dataset, merge_datasets

    corel = Dataset("corel5k", ["c0", "c1"], ["/c0", "/c1"], ["sky", "cat"], np.array([[1, 0], [1, 1]], bool))
    tiny = Dataset("tinyimagenet", ["t0"], ["/t0"], ["goldfish", "cat"], np.array([[1, 0]], bool),
                   aliases={"n01": "goldfish"})
    mixed = merge_datasets([corel, tiny])
    assert mixed.labels == ["sky", "cat", "goldfish"]  # 'cat' of both datasets is one label
    assert mixed.matrix.tolist() == [[1, 0, 0], [1, 1, 0], [0, 0, 1]]
    assert mixed.known.tolist() == [[1, 1, 0], [1, 1, 0], [0, 1, 1]]  # 'sky' is unknown for the goldfish photo
    assert mixed.source.tolist() == [0, 0, 1] and mixed.resolve_aliases(["n01"]) == ["goldfish"]
    kept = mixed.subset([2]).select_labels(["goldfish", "sky"])
    assert kept.known.tolist() == [[1, 0]] and kept.source.tolist() == [1]
