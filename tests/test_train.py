import json

import numpy as np
import pytest
import torch

from tagrank.config import load_config
from tagrank.datasets import Dataset, filter_tags
from tagrank.errors import TagrankError
from tagrank.features import Features
from tagrank.model import TaggingModel
from tagrank.train import train
from tagrank.encoders.word_vectors import WordVectors
from tests.conftest import synthetic_features, write_word2vec_text

LABELS = [f"tag{i}" for i in range(12)]


@pytest.fixture
def toy(tmp_path):
    """120 images with 1-3 of 12 labels, features that carry the labels, 8-d vectors for the labels."""
    rng = np.random.default_rng(1)
    matrix = np.zeros((120, len(LABELS)), dtype=bool)
    for i in range(120):
        matrix[i, rng.choice(len(LABELS), size=rng.integers(1, 4), replace=False)] = True
    paths = [f"/img/{i}.jpg" for i in range(120)]
    data = Dataset("toy", [str(i) for i in range(120)], paths, list(LABELS), matrix)
    feats = synthetic_features(matrix, dim=24)
    features = Features(paths, feats, flipped=feats + 0.01)
    vectors = WordVectors.from_file(write_word2vec_text(
        tmp_path / "v.txt", {t: rng.normal(size=8).tolist() for t in LABELS}))
    return data, features, vectors


def small_config(method: str, epochs: int = 4):
    config = load_config(method=method)
    config.train.epochs = epochs
    config.train.batch_size = 16
    config.method_options.hidden = [32]
    if hasattr(config.method_options, "k"):
        config.method_options.k = 6
    if hasattr(config.method_options, "negatives"):
        config.method_options.negatives = 5
    return config


@pytest.mark.parametrize("method", ["transform", "fast0tag", "warp", "bce"])
def test_each_method_trains_and_improves(method, toy, tmp_path):
    data, features, vectors = toy
    result = train(small_config(method, epochs=6), data, features, vectors, tmp_path / method, progress=False)
    start, best = result.history[0], max(h["val_sample_mAP"] for h in result.history)
    assert result.history[0]["epoch"] == 0
    assert best > start["val_sample_mAP"] + 0.1
    assert result.history[-1]["val_loss"] < start["val_loss"]
    model = TaggingModel.load(tmp_path / method)
    assert model.name == method and model.labels == LABELS
    described = json.loads((tmp_path / method / "model.json").read_text())
    assert described["vector_source"] == vectors.source and described["dim"] == 8
    lines = (tmp_path / method / "train.jsonl").read_text().splitlines()
    assert len(lines) == 7 and json.loads(lines[-1])["epoch"] == 6


@pytest.mark.parametrize("loss", ["hinge", "warp"])
def test_tuned_transform_trains_and_improves(loss, toy, tmp_path):
    config = small_config("transform", epochs=6)
    config.method_options.loss = loss
    config.method_options.pairing = "each"
    config.method_options.positive_weight_power = 0.5
    config.method_options.normalize_vectors = True
    data, features, vectors = toy
    result = train(config, data, features, vectors, tmp_path / "tuned", progress=False)
    assert max(h["val_sample_mAP"] for h in result.history) > result.history[0]["val_sample_mAP"] + 0.1
    assert json.loads((tmp_path / "tuned" / "model.json").read_text())["options"]["pairing"] == "each"
    assert len(result.validation_paths) == 12 and not set(result.validation_paths) - set(data.paths)


def test_affine_transform_with_word_layer_trains_and_reloads(toy, tmp_path):
    config = small_config("transform", epochs=6)
    config.method_options.affine = True
    config.method_options.word_hidden = 16
    data, features, vectors = toy
    result = train(config, data, features, vectors, tmp_path / "affine", progress=False)
    assert max(h["val_sample_mAP"] for h in result.history) > result.history[0]["val_sample_mAP"] + 0.1
    method = TaggingModel.load(tmp_path / "affine").method
    assert method.matrices(torch.zeros(1, 24)).shape == (1, 6, 9)  # A acts on [w; 1]
    word = torch.from_numpy(vectors.embed(["tag0"]).matrix)
    assert not torch.equal(method.label_space(word)[:, :8], word)  # the word layer was trained
    x = torch.from_numpy(features.features[:2])
    assert torch.allclose(method.scores(x, word)[:, 0],
                          torch.linalg.vector_norm(method.matrices(x) @ method.label_space(word)[0], dim=1))


@pytest.mark.parametrize("field", ["pairing", "loss"])
def test_unknown_loss_option_is_named(field, toy, tmp_path):
    config = small_config("transform")
    setattr(config.method_options, field, "closest")
    with pytest.raises(TagrankError, match=f"method.{field}"):
        train(config, *toy, tmp_path / "bad", progress=False)


def test_same_seed_same_model(toy, tmp_path):
    data, features, vectors = toy
    a = train(small_config("transform"), data, features, vectors, tmp_path / "a", progress=False)
    b = train(small_config("transform"), data, features, vectors, tmp_path / "b", progress=False)
    for key, value in a.model.method.state_dict().items():
        assert torch.equal(value, b.model.method.state_dict()[key]), key
    config = small_config("transform")
    config.train.seed = 1
    c = train(config, data, features, vectors, tmp_path / "c", progress=False)
    assert not torch.equal(c.model.method.state_dict()["head.0.weight"], a.model.method.state_dict()["head.0.weight"])


def test_resume_after_interruption_equals_uninterrupted(toy, tmp_path, monkeypatch):
    data, features, vectors = toy
    full = train(small_config("transform", epochs=4), data, features, vectors, tmp_path / "full", progress=False)

    import tagrank.train as trainer

    real = trainer._validate
    calls = {"n": 0}

    def crash_in_third_epoch(*args):
        calls["n"] += 1
        if calls["n"] == 4:  # the epoch-0 validation, then epochs 1, 2; the third epoch dies
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(trainer, "_validate", crash_in_third_epoch)
    with pytest.raises(KeyboardInterrupt):
        train(small_config("transform", epochs=4), data, features, vectors, tmp_path / "cut", progress=False)
    monkeypatch.setattr(trainer, "_validate", real)
    assert len((tmp_path / "cut" / "train.jsonl").read_text().splitlines()) == 3  # epochs 0-2 survived
    TaggingModel.load(tmp_path / "cut")  # the last good model is intact
    with pytest.raises(TagrankError, match="--resume"):
        train(small_config("transform", epochs=4), data, features, vectors, tmp_path / "cut", progress=False)
    resumed = train(small_config("transform", epochs=4), data, features, vectors, tmp_path / "cut", resume=True,
                    progress=False)
    assert [h["val_loss"] for h in resumed.history] == [h["val_loss"] for h in full.history]
    for key, value in full.model.method.state_dict().items():
        assert torch.equal(value, resumed.model.method.state_dict()[key]), key


def test_unseen_tags_never_reach_the_loss(toy, tmp_path, monkeypatch):
    data, features, vectors = toy
    unseen = ["tag3", "tag7"]
    training = filter_tags(data, unseen=unseen)
    seen_by_loss = []

    from tagrank.methods.transform import Transform

    real_loss = Transform.loss

    def spy(self, x, positives, label_vectors, generator):
        seen_by_loss.append(label_vectors.clone())
        assert positives.shape[1] == label_vectors.shape[0] == len(LABELS) - 2
        return real_loss(self, x, positives, label_vectors, generator)

    monkeypatch.setattr(Transform, "loss", spy)
    result = train(small_config("transform", epochs=2), training, features, vectors, tmp_path / "zs", progress=False)
    assert not set(unseen) & set(result.model.labels)
    unseen_vectors = torch.from_numpy(vectors.embed(unseen).matrix)
    for label_vectors in seen_by_loss:
        distances = torch.cdist(unseen_vectors, label_vectors)
        assert distances.min() > 1e-6  # no unseen tag's vector was ever scored in the loss


def test_model_refuses_other_vectors(toy, tmp_path):
    data, features, vectors = toy
    train(small_config("fast0tag", epochs=1), data, features, vectors, tmp_path / "m", progress=False)
    model = TaggingModel.load(tmp_path / "m")
    model.check_vectors(vectors)
    other = WordVectors.from_file(write_word2vec_text(tmp_path / "o.txt", {t: [1.0] * 8 for t in LABELS}))
    with pytest.raises(TagrankError, match="built from vectors"):
        model.check_vectors(other)
    with pytest.raises(TagrankError, match="50-d"):
        model.check_vectors(WordVectors.default())


def test_model_files_damaged(toy, tmp_path):
    data, features, vectors = toy
    train(small_config("bce", epochs=1), data, features, vectors, tmp_path / "m", progress=False)
    (tmp_path / "m" / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{bad json}")
    with pytest.raises(TagrankError, match="cannot read"):
        TaggingModel.load(tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").unlink()
    with pytest.raises(TagrankError, match="missing model.safetensors"):
        TaggingModel.load(tmp_path / "m")
