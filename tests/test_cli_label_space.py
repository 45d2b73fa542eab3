import json

from tests.conftest import assert_one_error, write_word2vec_text


def test_similar_glove_searches_its_whole_vocabulary(cli):
    result = cli("similar", "dog", "--top", "5", "--vectors", "glove-6b-50d")
    assert result.code == 0, result
    names = [line.split()[-1] for line in result.out.splitlines()]
    assert len(names) == 5 and "puppy" in names


def test_similar_default_encoder_searches_the_everyday_vocabulary(cli):
    from tagrank.labels.vocab import load_vocabulary

    result = cli("similar", "golden retriever", "--top", "3")
    assert result.code == 0, result
    names = [line.split(maxsplit=2)[-1] for line in result.out.splitlines()]
    assert len(names) == 3 and set(names) <= set(load_vocabulary("everyday")) and "golden retriever" not in names


def test_index_build_info_and_similar(cli, tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("dog\ncat\npuppy\nkitten\nqqqzzzx\n")
    assert "5 of 5 tags indexed (384-d, minilm, Flat)" in cli("index", "build", "--vocab", vocab, "--out", tmp_path / "all").out
    result = cli("index", "build", "--vocab", vocab, "--out", tmp_path / "idx", "--vectors", "glove-6b-50d")
    assert result.code == 0, result
    assert "qqqzzzx" in result.err and "4 of 5" in result.out
    info = json.loads(cli("index", "info", tmp_path / "idx").out)
    assert info["count"] == 4 and info["oov"] == ["qqqzzzx"]
    result = cli("similar", "kitten", "--index", tmp_path / "idx", "--top", "2")
    assert result.code == 0 and [line.split()[-1] for line in result.out.splitlines()] == ["puppy", "cat"]
    assert cli("index", "build", "--vocab", vocab, "--out", tmp_path / "i2", "--strict", "--vectors", "glove-6b-50d").code == 2


def test_bad_inputs_one_line_each(cli, tmp_path):
    (tmp_path / "empty.txt").write_text("\n")
    (tmp_path / "latin1.txt").write_bytes(b"caf\xe9\n")
    (tmp_path / "oov.txt").write_text("qqqzzzx\nwwwyyyv\n")
    (tmp_path / "notvec.txt").write_text("hello world\nfoo\n")
    assert_one_error(cli("index", "build", "--vocab", tmp_path / "empty.txt", "--out", tmp_path / "o"), "empty vocabulary")
    assert_one_error(cli("index", "build", "--vocab", tmp_path / "latin1.txt", "--out", tmp_path / "o"), "not UTF-8")
    assert_one_error(cli("index", "build", "--vocab", tmp_path / "oov.txt", "--out", tmp_path / "o", "--vectors",
                         "glove-6b-50d"), "none of the 2 tags")
    assert_one_error(cli("similar", "dog", "--vectors", tmp_path / "missing.bin"), "missing.bin")
    assert_one_error(cli("similar", "dog", "--vectors", tmp_path / "notvec.txt"), "not a word-vector file")
    assert_one_error(cli("similar", "dog", "--top", "0"), "--top")
    assert_one_error(cli("similar", "dog", "--top", "-3"), "--top")
    assert_one_error(cli("similar", "dog", "--top", "many"), "--top")
    assert not (tmp_path / "o").exists()


def test_index_from_other_vectors_or_corrupted(cli, tmp_path):
    vectors = write_word2vec_text(tmp_path / "v.txt", {"dog": [1, 0, 0, 0], "cat": [0, 1, 0, 0]})
    (tmp_path / "vocab.txt").write_text("dog\ncat\n")
    assert cli("index", "build", "--vocab", tmp_path / "vocab.txt", "--out", tmp_path / "idx", "--vectors", vectors).code == 0
    assert cli("similar", "dog", "--index", tmp_path / "idx").out.split()[-1] == "cat"  # the manifest's vectors
    assert_one_error(cli("similar", "dog", "--index", tmp_path / "idx", "--vectors", "glove-6b-50d"), "4-d vectors")
    other = write_word2vec_text(tmp_path / "w.txt", {"dog": [0, 0, 1, 0], "cat": [0, 1, 0, 0]})
    assert_one_error(cli("similar", "dog", "--index", tmp_path / "idx", "--vectors", other), "built from vectors")
    (tmp_path / "idx" / "labels.faiss").write_bytes(b"garbage")
    assert_one_error(cli("similar", "dog", "--index", tmp_path / "idx", "--vectors", vectors), "corrupted")


def test_rank_searches_a_clustered_index_exactly_or_approximately(cli, photos, tmp_path, monkeypatch):
    from tagrank.labels.vocab import load_vocabulary

    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(load_vocabulary("everyday")[:600]) + "\n")
    assert "IVF16,Flat" in cli("index", "build", "--vocab", vocab, "--out", tmp_path / "idx", "--clusters", "16").out
    assert json.loads(cli("index", "info", tmp_path / "idx").out)["index_type"] == "IVF16,Flat"
    assert_one_error(cli("index", "build", "--vocab", vocab, "--out", tmp_path / "neg", "--clusters", "-1"),
                     "--clusters must be 0")

    def tags(search):
        result = cli("rank", photos["coffee"], "--index", tmp_path / "idx", "--search", search, "--format", "json")
        assert result.code == 0, result
        return [(t["tag"], round(t["score"], 4)) for t in json.loads(result.out)[0]["tags"]]

    exact = tags("exact")
    assert tags("faiss") == exact
    import tagrank.images.features
    from tagrank.ranking.search import FrequentTagMemory

    monkeypatch.setattr(tagrank.images.features, "DEFAULT_CACHE_DIR", tmp_path / "cache")
    approx = tags("approx")  # the first photos are ranked exactly, and their top 50 tags kept for the next run
    assert approx == exact
    kept = list((tmp_path / "cache" / "frequent-tags").glob("*.safetensors"))
    assert len(kept) == 1 and len(FrequentTagMemory(kept[0], 600).recall()) == 50
    assert_one_error(cli("rank", photos["coffee"], "--search", "fastest"), "--search must be one of")
    import tagrank.ranking.search

    monkeypatch.setattr(tagrank.ranking.search, "FAISS_MAX_ELEMENTS", 1000)  # as a 4 GiB index would be refused
    result = cli("rank", photos["coffee"], "--index", tmp_path / "idx", "--search", "faiss", "--out", tmp_path / "r.json")
    assert_one_error(result, "use --search exact or approx")
    assert not (tmp_path / "r.json").exists()
