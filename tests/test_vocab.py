import pandas as pd
import pytest

from tagrank.errors import TagrankError
from tagrank.labels.vocab import read_vocabulary


def test_text_vocabulary_blank_lines_duplicates_bom(tmp_path, caplog):
    path = tmp_path / "v.txt"
    path.write_bytes("\ufeffdog\r\n\r\n#sunset\ncat\ndog\n  café \n".encode("utf-8"))
    assert read_vocabulary(path) == ["dog", "#sunset", "cat", "café"]
    assert "duplicate" in caplog.text and "'dog'" in caplog.text


def test_csv_and_parquet_tag_column(tmp_path):
    frame = pd.DataFrame({"tag": ["a", "b", "a"], "other": [1, 2, 3]})
    frame.to_csv(tmp_path / "v.csv", index=False)
    frame.to_parquet(tmp_path / "v.parquet")
    assert read_vocabulary(tmp_path / "v.csv") == ["a", "b"]
    assert read_vocabulary(tmp_path / "v.parquet") == ["a", "b"]
    pd.DataFrame({"word": ["a"]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(TagrankError, match="no 'tag' column"):
        read_vocabulary(tmp_path / "bad.csv")


def test_bad_vocabularies(tmp_path):
    (tmp_path / "empty.txt").write_text("\n  \n")
    with pytest.raises(TagrankError, match="empty vocabulary"):
        read_vocabulary(tmp_path / "empty.txt")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(TagrankError, match="not UTF-8"):
        read_vocabulary(tmp_path / "latin1.txt")
    with pytest.raises(TagrankError, match="not found"):
        read_vocabulary(tmp_path / "missing.txt")


def test_named_vocabularies_ship_with_the_package():
    from tagrank.labels.vocab import load_vocabulary, named_vocabularies

    assert {"everyday", "nuswide1k", "nuswide81", "corel5k"} <= set(named_vocabularies())
    assert len(load_vocabulary("nuswide81")) == 81
    with pytest.raises(TagrankError, match="unknown vocabulary 'everydayy'"):
        load_vocabulary("everydayy")


def test_everyday_vocabulary_is_visual_deduplicated_and_covers_the_datasets():
    from tagrank.labels.encoders import normalise_tag
    from tagrank.labels.vocab import load_vocabulary

    tags = load_vocabulary("everyday")
    assert len(tags) > 5000 and len({normalise_tag(t) for t in tags}) == len(tags)
    for expected in ("cat", "espresso", "coffee cup", "golden retriever", "golf cart", "beach", "kimono"):
        assert expected in tags, expected
    assert not {"italians", "politics", "awesome", "fantastic"} & set(tags)  # NUS-WIDE's non-visual Flickr tags


def test_merge_duplicates_keeps_the_first_spelling(caplog):
    from tagrank.labels.encoders import normalise_tag
    from tagrank.labels.vocab import merge_duplicates

    assert merge_duplicates(["Beach", "beach", "#beach", "ice_cream", "ice cream"], normalise_tag) == ["Beach", "ice_cream"]
    assert "merged 3" in caplog.text
