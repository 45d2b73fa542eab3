import numpy as np
import pytest

from tagrank.errors import TagrankError
from tagrank.labels.encoders import normalise_tag
from tagrank.labels.encoders.word_vectors import WordVectors
from tests.conftest import write_word2vec_text


def test_normalise_hashtags_case_and_separators():
    assert normalise_tag("#SunSet") == "sunset"
    assert normalise_tag("  ice   cream ") == "ice cream"
    assert normalise_tag("new_york") == "new york"
    assert normalise_tag("Café", lowercase=False) == "Café"
    assert normalise_tag("ｆｕｌｌｗｉｄｔｈ") == "fullwidth"  # NFKC folds compatibility forms


def test_default_vectors_load_and_lookup():
    v = WordVectors.default()
    assert (len(v), v.dim, v.lowercase) == (400000, 50, True)
    assert v.lookup("#SunSet").tokens == ("sunset",)
    assert v.lookup("snow-capped").tokens == ("snow-capped",)
    assert v.lookup("f-16").tokens == ("f-16",)
    assert v.lookup("café").in_vocab


def test_phrase_token_preferred_else_word_mean(tiny_vectors_file):
    v = WordVectors.from_file(tiny_vectors_file)
    assert not v.lowercase
    assert v.lookup("New York").tokens == ("New_York",)  # the phrase token wins
    entry = v.lookup("ice cream")
    assert entry.tokens == ("ice", "cream")
    expected = (v.keyed["ice"] + v.keyed["cream"]) / 2
    np.testing.assert_allclose(v.vector(entry), expected, rtol=1e-6)


def test_case_sensitive_vectors_keep_case_then_fall_back(tiny_vectors_file):
    v = WordVectors.from_file(tiny_vectors_file)
    assert v.lookup("Sunset").tokens == ("Sunset",)
    assert v.lookup("#DOG").tokens == ("dog",)


def test_oov_reported_by_name_and_strict(tiny_vectors_file, caplog):
    v = WordVectors.from_file(tiny_vectors_file)
    embedded = v.embed(["dog", "zebra", "cat"])
    assert embedded.tags == ["dog", "cat"] and embedded.oov == ["zebra"]
    assert embedded.matrix.shape == (2, 4)
    assert "zebra" in caplog.text
    with pytest.raises(TagrankError, match="zebra"):
        v.embed(["dog", "zebra"], strict=True)
    with pytest.raises(TagrankError, match="none of the 2 tags"):
        v.embed(["zebra", "okapi"])


def test_glove_text_without_header(tmp_path):
    path = write_word2vec_text(tmp_path / "glove.txt", {"a": [1, 0, 0], "b": [0, 1, 0]}, header=False)
    v = WordVectors.from_file(path)
    assert (len(v), v.dim) == (2, 3)


def test_word2vec_binary_roundtrip(tiny_vectors_file, tmp_path):
    text = WordVectors.from_file(tiny_vectors_file)
    text.keyed.save_word2vec_format(str(tmp_path / "v.bin"), binary=True)
    binary = WordVectors.from_file(tmp_path / "v.bin")
    np.testing.assert_allclose(binary.keyed["dog"], text.keyed["dog"], rtol=1e-5)


@pytest.mark.parametrize("content", [b"just some text\nnot vectors here\n", b"\x00\x01\x02binary junk", b""])
def test_not_a_vector_file(tmp_path, content):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(TagrankError, match="not a word-vector file"):
        WordVectors.from_file(path)


def test_missing_vector_file(tmp_path):
    with pytest.raises(TagrankError, match="vectors file not found"):
        WordVectors.from_file(tmp_path / "nope.bin")
