import json

import numpy as np
import pytest

from tagrank.errors import TagrankError
from tagrank.labels.index import LabelIndex
from tagrank.labels.encoders.word_vectors import WordVectors
from tests.conftest import write_word2vec_text


def test_round_trip_keeps_vectors_and_table(tiny_vectors_file, tmp_path):
    v = WordVectors.from_file(tiny_vectors_file)
    index = LabelIndex.build(["dog", "ice cream", "zebra", "#Sunset"], v)
    index.save(tmp_path / "idx")
    loaded = LabelIndex.load(tmp_path / "idx", v)
    assert loaded.tags == ["dog", "ice cream", "#Sunset"] and loaded.oov == ["zebra"]
    np.testing.assert_allclose(loaded.vectors, index.vectors, rtol=1e-6)
    np.testing.assert_allclose(loaded.vectors[0], v.keyed["dog"], rtol=1e-5)
    row = loaded.table.set_index("tag").loc["ice cream"]
    assert list(row["tokens"]) == ["ice", "cream"] and bool(row["in_vocab"])
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert manifest["count"] == 3 and manifest["dim"] == 4 and manifest["oov"] == ["zebra"]


def test_similar_uses_cosine_and_skips_query(tmp_path):
    path = write_word2vec_text(tmp_path / "v.txt", {"a": [1, 0], "b": [0.9, 0.1], "c": [0, 1], "d": [-1, 0]})
    v = WordVectors.from_file(path)
    index = LabelIndex.build(["a", "b", "c", "d"], v)
    assert [t for t, _ in index.similar("a", 2, v)] == ["b", "c"]
    with pytest.raises(TagrankError, match="positive"):
        index.similar("a", 0, v)


def test_similar_on_default_vectors():
    v = WordVectors.default()
    neighbours = [t for t, _ in LabelIndex.from_vectors(v).similar("dog", 5, v)]
    assert "dogs" in neighbours and "puppy" in neighbours


def test_mismatched_vectors_refused(tiny_vectors_file, tmp_path):
    v = WordVectors.from_file(tiny_vectors_file)
    LabelIndex.build(["dog"], v).save(tmp_path / "idx")
    other = write_word2vec_text(tmp_path / "other.txt", {"dog": [1.0, 2.0, 3.0, 4.0]})
    with pytest.raises(TagrankError, match="built from vectors"):
        LabelIndex.load(tmp_path / "idx", WordVectors.from_file(other))
    three_d = write_word2vec_text(tmp_path / "3d.txt", {"dog": [1.0, 2.0, 3.0]})
    with pytest.raises(TagrankError, match="4-d vectors"):
        LabelIndex.load(tmp_path / "idx", WordVectors.from_file(three_d))


def test_corrupted_faiss_file_detected(tiny_vectors_file, tmp_path):
    v = WordVectors.from_file(tiny_vectors_file)
    LabelIndex.build(["dog", "cat"], v).save(tmp_path / "idx")
    faiss_file = tmp_path / "idx" / "labels.faiss"
    data = bytearray(faiss_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    faiss_file.write_bytes(bytes(data))
    with pytest.raises(TagrankError, match="corrupted"):
        LabelIndex.load(tmp_path / "idx")


def test_save_is_atomic_and_refuses_foreign_directories(tiny_vectors_file, tmp_path, monkeypatch):
    v = WordVectors.from_file(tiny_vectors_file)
    LabelIndex.build(["dog"], v).save(tmp_path / "idx")
    before = (tmp_path / "idx" / "manifest.json").read_text()

    import faiss

    def crash(*_):
        raise RuntimeError("disk full")

    monkeypatch.setattr(faiss, "write_index", crash)
    with pytest.raises(RuntimeError):
        LabelIndex.build(["dog", "cat"], v).save(tmp_path / "idx")
    assert (tmp_path / "idx" / "manifest.json").read_text() == before  # the old index is untouched
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp debris

    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "me.jpg").write_bytes(b"x")
    monkeypatch.undo()
    with pytest.raises(TagrankError, match="refusing to overwrite"):
        LabelIndex.build(["dog"], v).save(tmp_path / "photos")


def test_embedded_vocabulary_is_cached_on_disk_and_rebuilt_when_damaged(tiny_vectors_file, tmp_path, monkeypatch, caplog):
    import tagrank.labels.index
    from tagrank.labels.index import embedded_vocabulary

    monkeypatch.setattr(tagrank.labels.index, "CACHED_VOCABULARY_MIN_TAGS", 1)  # cache even this tiny one
    v = WordVectors.from_file(tiny_vectors_file)
    built_by_index = LabelIndex.build
    tags = ["dog", "ice cream", "zebra", "#Sunset"]
    first = embedded_vocabulary(tags, v, tmp_path)
    built = LabelIndex.build(tags, v)
    assert first[0] == built.tags and first[2] == ["zebra"] and np.array_equal(first[1], built.vectors)
    (entry,) = (tmp_path / "vocabularies").iterdir()
    monkeypatch.setattr(LabelIndex, "build", lambda *a, **k: pytest.fail("should come from the cache"))
    caplog.clear()
    again = embedded_vocabulary(tags, v, tmp_path)
    assert again[0] == first[0] and np.array_equal(again[1], first[1]) and "'zebra'" in caplog.text  # still said
    monkeypatch.setattr(LabelIndex, "build", built_by_index)
    assert embedded_vocabulary(["dog"], v, tmp_path)[0] == ["dog"]  # another vocabulary, another entry
    assert len(list((tmp_path / "vocabularies").iterdir())) == 2
    monkeypatch.setattr(tagrank.labels.index, "CACHED_VOCABULARIES", 2)
    embedded_vocabulary(["cat"], v, tmp_path)  # a third: the oldest entry goes
    assert len(list((tmp_path / "vocabularies").iterdir())) == 2 and not entry.exists()
    embedded_vocabulary(tags, v, tmp_path)  # written again: now the newest entry
    entry = max((tmp_path / "vocabularies").iterdir(), key=lambda e: e.stat().st_mtime_ns)
    entry.write_bytes(b"damaged")
    assert embedded_vocabulary(tags, v, tmp_path)[0] == first[0]


@pytest.mark.parametrize("edit", ["nan", "flip", "width"])
def test_array_cache_rebuilds_an_edited_entry(tmp_path, edit):
    """An entry whose bytes changed after it was written (NaN, one flipped value, another width) is not read."""
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    from tagrank.array_cache import read_entry, write_entry

    path = tmp_path / "entry.safetensors"
    vectors = np.arange(12, dtype=np.float32).reshape(3, 4)
    write_entry(path, {"vectors": vectors}, {"checksum": "abc"}, keep=4)
    meta, arrays = read_entry(path, {"checksum": "abc"})
    assert np.array_equal(arrays["vectors"], vectors) and meta["checksum"] == "abc"
    assert read_entry(path, {"checksum": "other encoder"}) is None
    with safe_open(str(path), framework="np") as f:
        header = f.metadata()
    edited = load_file(path)["vectors"]
    if edit == "nan":
        edited[1, 2] = np.nan
    elif edit == "flip":
        edited[0, 0] = 1e6
    else:
        edited = np.zeros((3, 5), np.float32)
    save_file({"vectors": edited}, path, metadata=header)  # the old checksums with new bytes
    assert json.loads(header["tagrank"])["crc32"]
    assert read_entry(path, {"checksum": "abc"}) is None


def test_default_label_space_is_cached_and_equal_to_computing_it(tmp_path, monkeypatch):
    """The default vocabulary's label space comes from disk on the second start, equal to computing it."""
    import torch

    import tagrank.images.features
    from tagrank.tagger import Tagger

    monkeypatch.setattr(tagrank.images.features, "DEFAULT_CACHE_DIR", tmp_path)
    tagger = Tagger.load()
    computed = tagger.prepare()
    assert len(list((tmp_path / "label-spaces").glob("*.safetensors"))) == 1
    fresh = Tagger.load()
    monkeypatch.setattr(fresh.method, "label_space", lambda *a: pytest.fail("should come from the cache"))
    again = fresh.prepare()
    assert torch.equal(again.engine.vectors, computed.engine.vectors) and torch.equal(again.kinds, computed.kinds)
