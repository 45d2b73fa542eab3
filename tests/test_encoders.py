"""Label encoders: the wordllama reader on a tiny fixture, the registry, look-up order, duplicates, OOV."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from tagrank.labels.encoders import load_encoder
from tagrank.labels.encoders.word_vectors import WordVectors
from tagrank.labels.encoders.wordllama import WordLlamaEncoder
from tagrank.errors import TagrankError
from tagrank.labels.index import LabelIndex
from tests.conftest import write_word2vec_text

WORDS = ["[UNK]", "golf", "cart", "espresso", "machine", "cat"]


@pytest.fixture
def tiny_wordllama(tmp_path) -> WordLlamaEncoder:
    """A 6-token, 4-d wordllama: a word-level tokenizer file and a safetensors embedding table."""
    from safetensors.numpy import save_file
    from tokenizers import Tokenizer, models, pre_tokenizers

    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    table = np.arange(len(WORDS) * 4, dtype=np.float16).reshape(len(WORDS), 4)
    save_file({"embedding.weight": table}, str(tmp_path / "weights.safetensors"))
    return WordLlamaEncoder.from_files(tmp_path / "weights.safetensors", tmp_path / "tokenizer.json", "test")


def test_wordllama_averages_token_embeddings_and_knows_every_tag(tiny_wordllama):
    table = np.arange(len(WORDS) * 4, dtype=np.float32).reshape(len(WORDS), 4)
    vectors = tiny_wordllama.encode(["golf cart", "#Golf_Cart", "cat", "affenpinscher"])
    assert vectors.shape == (4, 4) and tiny_wordllama.dim == 4
    assert np.allclose(vectors[0], table[[1, 2]].mean(axis=0)) and np.allclose(vectors[1], vectors[0])
    assert np.allclose(vectors[2], table[5]) and np.allclose(vectors[3], table[0])  # unknown words: subword [UNK]
    embedded = tiny_wordllama.embed(["cat", "#"])  # only a tag with nothing left after normalising is OOV
    assert embedded.oov == ["#"] and embedded.tags == ["cat"]
    with pytest.raises(TagrankError, match="not in the vectors"):
        tiny_wordllama.encode(["cat", "#"])
    assert tiny_wordllama.describe() == {"name": "wordllama", "version": "test", "dim": 4,
                                         "checksum": tiny_wordllama.checksum}


def test_wordllama_files_are_checked(tmp_path, tiny_wordllama):
    with pytest.raises(TagrankError, match="wordllama file missing"):
        WordLlamaEncoder.from_files(tmp_path / "nope.safetensors", tmp_path / "tokenizer.json")


def test_index_records_the_encoder_and_refuses_another(tmp_path, tiny_wordllama, tiny_vectors_file):
    index = LabelIndex.build(["golf cart", "cat"], tiny_wordllama)
    index.save(tmp_path / "idx")
    assert LabelIndex.read_manifest(tmp_path / "idx")["encoder"]["name"] == "wordllama"
    with pytest.raises(TagrankError, match="uses 4-d vectors \\(wordllama\\)"):
        LabelIndex.load(tmp_path / "idx", WordVectors.from_file(write_word2vec_text(tmp_path / "v.txt", {"a": [1.0] * 3})))
    with pytest.raises(TagrankError, match="was built from vectors wordllama"):
        LabelIndex.load(tmp_path / "idx", WordVectors.from_file(tiny_vectors_file))


def test_registry_names_paths_and_unknown(tiny_vectors_file):
    assert load_encoder(str(tiny_vectors_file)).dim == 4
    assert load_encoder("glove-6b-50d") is load_encoder("glove-6b-50d")  # loaded once per process
    assert load_encoder().source == "minilm"  # the default
    with pytest.raises(TagrankError, match="unknown encoder 'glove-7b'.*wordllama"):
        load_encoder("glove-7b")


def test_glove_looks_up_the_tag_as_typed_first():
    vectors = load_encoder("glove-6b-50d")
    for tag in ("bundesstraße", "της", "½"):  # NFKC/casefold would turn these into other strings
        assert vectors.lookup(tag).tokens == (tag,), tag
    assert vectors.lookup("#Beach").tokens == ("beach",)


def test_duplicates_that_normalise_alike_are_one_tag(tiny_vectors_file, caplog):
    index = LabelIndex.build(["dog", "Sunset", "DOG", "#dog", "cat"], WordVectors.from_file(tiny_vectors_file))
    assert index.tags == ["dog", "Sunset", "DOG", "cat"]  # case-sensitive vectors: case makes another word
    assert "merged 1 tag(s)" in caplog.text and "'#dog' -> 'dog'" in caplog.text
    folded = LabelIndex.build(["beach", "Beach", "#beach"], load_encoder("glove-6b-50d"))
    assert folded.tags == ["beach"]


@pytest.mark.skipif(importlib.util.find_spec("wordllama") is None, reason="wordllama not installed")
def test_packaged_wordllama_has_no_oov_for_rare_names_and_hashtags():
    encoder = load_encoder("wordllama")
    tags = ["affenpinscher", "golf cart", "espresso machine", "#nofilter", "carpenter's kit"]
    embedded = encoder.embed(tags)
    assert embedded.oov == [] and embedded.matrix.shape == (5, 256)
    cat, kitten, truck = encoder.encode(["cat", "kitten", "truck"])
    cos = lambda a, b: float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))  # noqa: E731
    assert cos(cat, kitten) > cos(cat, truck)


REFERENCE = Path(__file__).parent / "data" / "minilm_reference.json"


def test_plain_torch_minilm_matches_sentence_transformers_reference():
    """tagrank's own BERT gives all-MiniLM-L6-v2's vectors (stored from sentence-transformers), with no
    transformers import."""
    import subprocess
    import sys

    from tagrank.labels.encoders.minilm import MiniLMEncoder, model_folder

    reference = json.loads(REFERENCE.read_text(encoding="utf-8"))
    encoder = MiniLMEncoder(model_folder(), table=None)
    computed = encoder.model.encode(reference["tags"], batch_size=5).numpy()  # several batches, mixed lengths
    expected = np.asarray(reference["vectors"], np.float32)
    assert np.abs(computed - expected).max() < 1e-5
    assert (computed * expected).sum(1).min() > 0.99999
    vectors = encoder.encode(["espresso machine", "coffee maker", "golf cart"])  # float16-rounded, unit length
    assert vectors.shape == (3, 384) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-3)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]
    code = ("import sys; from tagrank.labels.encoders import load_encoder; load_encoder('minilm').encode(['zyx tag']);"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('transformers', 'sentence_transformers')))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"


def test_minilm_table_holds_every_named_vocabulary_and_agrees_with_the_transformer():
    from tagrank.labels.encoders.minilm import TABLE, MiniLMEncoder, model_folder
    from tagrank.labels.vocab import load_vocabulary, named_vocabularies

    encoder = MiniLMEncoder(model_folder())
    assert encoder.table, f"{TABLE} missing or rejected"
    for name in named_vocabularies():
        assert all(encoder.normalise(t) in encoder.table for t in load_vocabulary(name)), name
    texts = ["dog", "espresso", "chesapeake bay retriever"]
    looked_up = encoder.encode(texts)
    assert encoder._model is None  # the table answered: no transformer loaded
    computed = encoder.compute(texts).astype(np.float32)
    assert np.abs(looked_up - computed).max() <= 1e-3  # float16 rounding of the same numbers


@pytest.mark.parametrize("damage", ["bytes", "checksum", "weights"])
def test_damaged_or_foreign_minilm_table_falls_back_to_the_transformer(tmp_path, damage, caplog):
    import shutil

    from tagrank.labels.encoders.minilm import TABLE, MiniLMEncoder, model_folder

    table = tmp_path / TABLE.name
    shutil.copy(TABLE, table)
    shutil.copy(TABLE.with_suffix(".sha256"), table.with_suffix(".sha256"))
    if damage == "bytes":
        data = bytearray(table.read_bytes())
        data[-10] ^= 0xFF
        table.write_bytes(bytes(data))
    elif damage == "checksum":
        table.with_suffix(".sha256").write_text("0" * 64 + "  minilm.safetensors\n")
    encoder = MiniLMEncoder(model_folder(), table=table)
    if damage == "weights":  # a table made from other weights: not an error, just not used
        from tagrank.labels.encoders.minilm import read_table

        assert read_table(table, "another") == {}
        return
    assert encoder.table == {} and "ignoring the encoder table" in caplog.text
    assert np.allclose(encoder.encode(["dog"]), MiniLMEncoder(model_folder()).encode(["dog"]), atol=1e-3)


def test_concatenation_weighs_each_encoder_alike_and_needs_every_part(tiny_wordllama, tiny_vectors_file):
    from tagrank.labels.encoders.concat import ConcatEncoder

    words = WordVectors.from_file(tiny_vectors_file)
    both = ConcatEncoder([tiny_wordllama, words])
    assert both.dim == 8 and both.source == f"wordllama+{words.source}"
    vectors = both.encode(["cat", "dog"])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-6)
    for part, block in ((tiny_wordllama, vectors[:, :4]), (words, vectors[:, 4:])):
        own = part.encode(["cat", "dog"])
        assert np.allclose(block, own / np.linalg.norm(own, axis=1, keepdims=True) / np.sqrt(2), atol=1e-6)
    assert both.embed(["cat", "golf"]).oov == ["golf"]  # wordllama knows 'golf', the word vectors do not


def test_registered_names_joined_by_plus_load_side_by_side():
    joint = load_encoder("glove-6b-50d+glove-6b-50d")
    assert joint.dim == 100 and joint.source == "glove-6b-50d+glove-6b-50d"
    cat, truck = load_encoder("glove-6b-50d").encode(["cat", "truck"])
    joint_cat, joint_truck = joint.encode(["cat", "truck"])
    assert joint_cat @ joint_truck == pytest.approx(cat @ truck / np.linalg.norm(cat) / np.linalg.norm(truck), abs=1e-5)
    with pytest.raises(TagrankError, match="unknown encoder 'glove-6b-50d\\+nope'"):
        load_encoder("glove-6b-50d+nope")
