import dataclasses
import json

import numpy as np
import pytest
import torch

from tagrank.config import SourceConfig, load_config
from tagrank.images.datasets import Dataset, filter_tags
from tagrank.errors import TagrankError
from tagrank.images.features import Features
from tagrank.model import TaggingModel
from tagrank.training.trainer import adam, train
from tagrank.labels.encoders.word_vectors import WordVectors
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


@pytest.mark.parametrize("loss", ["hinge", "warp", "softmax"])
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


def test_adam_is_fused_on_cpu_and_takes_the_same_steps():
    """The fused kernel only regroups Adam's arithmetic: weights after some steps agree with the per-tensor loop."""
    results = []
    for fused in (True, False):
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 8))
        groups = [{"params": list(net.parameters()), "scale": 1.0}]
        optimizer = adam(groups, 1e-2, 1e-3) if fused else torch.optim.Adam(groups, lr=1e-2, weight_decay=1e-3)
        assert optimizer.defaults["fused"] is (True if fused else None)
        x = torch.randn(64, 16, generator=torch.Generator().manual_seed(1))
        for _ in range(20):
            optimizer.zero_grad(set_to_none=True)
            net(x).square().mean().backward()
            optimizer.step()
        results.append(torch.cat([p.detach().flatten() for p in net.parameters()]))
    assert torch.allclose(results[0], results[1], atol=1e-6)


def test_resume_after_interruption_equals_uninterrupted(toy, tmp_path, monkeypatch):
    data, features, vectors = toy
    full = train(small_config("transform", epochs=4), data, features, vectors, tmp_path / "full", progress=False)

    import tagrank.training.trainer as trainer

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

    def spy(self, x, positives, label_vectors, generator, known=None):
        seen_by_loss.append(label_vectors.clone())
        assert positives.shape[1] == label_vectors.shape[0] == len(LABELS) - 2
        return real_loss(self, x, positives, label_vectors, generator, known)

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
    with pytest.raises(TagrankError, match="not a safetensors model file"):
        TaggingModel.load(tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").unlink()
    with pytest.raises(TagrankError, match="missing model.safetensors"):
        TaggingModel.load(tmp_path / "m")


def test_negatives_come_only_from_known_labels():
    from tagrank.methods.base import sample_negatives

    positives = torch.tensor([[1, 0, 0, 0, 0, 0], [0, 0, 0, 1, 0, 0]], dtype=torch.bool)
    known = torch.tensor([[1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 0]], dtype=torch.bool)
    drawn = sample_negatives(positives, 30, torch.Generator().manual_seed(0), known)
    assert set(drawn[0].tolist()) == {1, 2} and set(drawn[1].tolist()) == {4}
    none_known = torch.zeros_like(known)  # no negative at all: only masked positives are drawn
    assert set(sample_negatives(positives, 5, torch.Generator(), none_known)[0].tolist()) == {0}


def test_mixture_shares_and_training(toy, tmp_path):
    from tagrank.images.datasets import merge_datasets
    from tagrank.training.trainer import _draw_weights

    data, features, vectors = toy
    first, second = data.subset(range(90)).select_labels(LABELS[:8]), data.subset(range(90, 120)).select_labels(LABELS[6:])
    mixed = merge_datasets([first, second])
    assert mixed.labels == LABELS and not mixed.known[:90, 8:].any() and not mixed.known[90:, :6].any()
    weights = _draw_weights(mixed, np.arange(120), [1.0, 3.0])
    assert torch.isclose(weights[90:].sum() / weights.sum(), torch.tensor(0.75, dtype=weights.dtype))
    assert _draw_weights(data, np.arange(120), []) is None
    config = small_config("transform", epochs=3)
    config.data.sources = [SourceConfig("toy", "a"), SourceConfig("toy", "b", weight=3.0)]
    result = train(config, mixed, features, vectors, tmp_path / "mix", progress=False)
    again = train(config, mixed, features, vectors, tmp_path / "mix2", progress=False)
    assert result.history[-1]["train_loss"] == again.history[-1]["train_loss"]  # same seed, same draws
    assert np.isfinite(result.history[-1]["val_sample_mAP"])


def test_config_reads_a_mixture(tmp_path):
    path = tmp_path / "mix.toml"
    path.write_text('[[data.sources]]\ndataset = "corel5k"\nroot = "c"\n\n'
                    '[[data.sources]]\ndataset = "tinyimagenet"\nroot = "t"\nweight = 2\nunseen = "u.txt"\n')
    config = load_config(path)
    assert [(s.dataset, s.weight, s.unseen) for s in config.data.sources] == [("corel5k", 1.0, None),
                                                                              ("tinyimagenet", 2.0, "u.txt")]
    path.write_text('[[data.sources]]\ndataset = "corel5k"\n')
    with pytest.raises(TagrankError, match=r"data.sources\[0\]: missing root"):
        load_config(path)
    path.write_text('[[data.sources]]\ndataset = "corel5k"\nroot = "c"\nshare = 1\n')
    with pytest.raises(TagrankError, match="unknown config field data.sources\\[0\\].share"):
        load_config(path)


def test_training_data_holds_unseen_classes_out_of_every_source(tmp_path):
    from tagrank.training.trainer import training_data
    from tests.test_datasets import make_corel, make_tinyimagenet

    corel = make_corel(tmp_path / "corel")
    (corel / "labels" / "words").write_text("city\r\ngolf cart\r\nsun\r\n")
    for split, ids in (("train", ["1000", "1001"]), ("test", ["2000"])):
        (corel / "images" / split).mkdir(parents=True)
        for i in ids:
            (corel / "images" / split / f"{i}.jpeg").write_bytes(b"x")
    (tmp_path / "tiny").mkdir()
    tiny = make_tinyimagenet(tmp_path / "tiny")
    config = load_config()
    config.data.sources = [SourceConfig("corel5k", str(corel)),
                           SourceConfig("tinyimagenet", str(tiny), unseen=str(tiny / "zsl_unseen.txt"))]
    data, unseen = training_data("mixture", None, config)
    assert unseen == ["golf cart"] and "golf cart" not in data.labels  # held out of Corel5k too
    assert data.labels == ["city", "sun", "goldfish", "Egyptian cat"] and len(data) == 6
    with pytest.raises(TagrankError, match="train 'mixture'"):
        training_data("corel5k", corel, config)
    config.data.sources = []
    with pytest.raises(TagrankError, match="needs \\[\\[data.sources\\]\\]"):
        training_data("mixture", None, config)


def _block_model(word_dim=8, feature_dim=24, weight=3.0):
    from tagrank.methods.transform import Transform, TransformOptions

    torch.manual_seed(0)
    method = Transform(TransformOptions(k=4, hidden=[16], backbone_block=True, block_weight=weight, block_classes=3),
                       feature_dim, word_dim, 5)
    knowledge = method.knowledge
    torch.nn.init.normal_(knowledge.classifier.weight)
    vectors = torch.nn.functional.normalize(torch.randn(1000, word_dim), dim=1)
    knowledge.class_vectors.copy_(vectors)
    knowledge.class_known.fill_(True)
    return method.eval()


def test_backbone_block_scores_match_its_matrices_and_the_engine():
    from tagrank.ranking.engine import Vocabulary, top_k

    method = _block_model()
    x, words = torch.randn(3, 24), torch.randn(40, 8)
    space = method.label_space(words)
    assert space.shape == (40, 9) and torch.allclose(space[:, :8].norm(dim=1), torch.ones(40))
    A = method.matrices(x)
    assert A.shape == (3, 8 + 4, 9)
    direct = torch.linalg.vector_norm(torch.einsum("bkd,vd->bvk", A, space), dim=2)
    assert torch.allclose(method.scores(x, words), direct, atol=1e-4)
    assert torch.allclose(method.space_scores(x, space), direct, atol=1e-4)  # the reference photos' cheap form
    distances, indices = top_k(method.factors(x), Vocabulary(space), 5, "norm")
    expected = direct.sort(dim=1)
    assert torch.equal(indices, expected.indices[:, :5]) and torch.allclose(distances, expected.values[:, :5], atol=1e-4)
    assert method.committee(x).shape == (3, 4, 9)  # only the learned rows vote in --explain


def test_backbone_block_is_conse_when_it_dominates():
    from tagrank.methods.conse import Conse, ConseOptions

    method = _block_model(weight=1e3)
    conse = Conse(ConseOptions(top=3), 24, 8)
    conse.knowledge.load_state_dict(method.knowledge.state_dict())
    x, words = torch.randn(4, 24), torch.randn(30, 8)
    by_block = method.scores(x, words).argsort(dim=1)
    by_conse = conse.scores(x, words).argsort(dim=1, descending=True)
    assert torch.equal(by_block[:, :10], by_conse[:, :10])


def test_backbone_block_is_saved_with_the_model_and_frozen(toy, tmp_path):
    data, features, vectors = toy
    config = small_config("transform", epochs=2)
    config.method_options.backbone_block = True
    with pytest.raises(TagrankError, match="backbone"):
        train(config, data, features, vectors, tmp_path / "nobackbone", progress=False)

    class FakeBackbone:  # what training takes from a backbone with cached features: its classifier, its name
        signature = "fake"

        class model:
            @staticmethod
            def get_classifier():
                torch.manual_seed(1)
                return torch.nn.Linear(24, 1000)

    import tagrank.methods.conse as conse

    original = conse.imagenet_class_vectors
    conse.imagenet_class_vectors = lambda encoder: (
        np.random.default_rng(0).normal(size=(1000, 8)).astype(np.float32), np.arange(1000) % 2 == 0)
    try:
        result = train(config, data, features, vectors, tmp_path / "block", progress=False, backbone=FakeBackbone())
    finally:
        conse.imagenet_class_vectors = original
    saved = TaggingModel.load(tmp_path / "block").method
    expected = FakeBackbone.model.get_classifier().weight
    assert torch.equal(saved.knowledge.classifier.weight, expected)  # trained with it, never changed
    assert saved.knowledge.class_known.sum() == 500
    assert result.history[-1]["val_sample_mAP"] > 0


def test_learned_rows_can_be_bounded_below_the_block():
    from tagrank.methods.transform import Transform, TransformOptions

    method = Transform(TransformOptions(k=4, hidden=[16], learned_norm=2.0), 24, 8, 5)
    A = method.learned(torch.randn(3, 24) * 100)
    assert torch.allclose(torch.linalg.matrix_norm(A), torch.full((3,), 2.0))
    words = torch.nn.functional.normalize(torch.randn(50, 8), dim=1)
    assert (method.scores(torch.randn(3, 24), words) <= 2.0 + 1e-5).all()  # ‖A w‖ ≤ ‖A‖_F for unit w


def test_background_words_exclude_training_and_unseen_labels_and_pull_learned_rows_down(toy, tmp_path):
    from tagrank.labels.encoders import load_encoder
    from tagrank.training.trainer import _background_words
    from tagrank.labels.vocab import load_vocabulary

    encoder = load_encoder("wordllama")
    everyday = load_vocabulary("everyday")
    words = _background_words(encoder, ["Cat", "beach"], ["golf cart"])
    assert len(words) == len(everyday) - 3  # 'cat', 'beach', 'golf cart' are constrained: not background
    data, features, _ = toy
    rng = np.random.default_rng(3)
    vectors = WordVectors.from_file(write_word2vec_text(  # the labels and 40 everyday words
        tmp_path / "bg.txt", {t: rng.normal(size=8).tolist() for t in LABELS + [w for w in everyday if " " not in w][:40]}))
    config = small_config("transform", epochs=3)
    reach = {}
    for weight in (0.0, 10.0):
        config.method_options.background_weight = weight
        result = train(config, data, features, vectors, tmp_path / f"bg{weight}", progress=False)
        method = result.model.method
        assert method.background is None  # training only: the saved model does not carry it
        method.background = _background_words(vectors, LABELS, [])  # the 40 everyday words
        with torch.no_grad():
            A = method.learned(torch.from_numpy(features.features[:20]))
        reach[weight] = float(torch.linalg.matrix_norm(A).mean())
    assert reach[10.0] < reach[0.0]


def _gated_model(p=4.0):
    method = _block_model()
    gated = type(method)(dataclasses.replace(method.options, learned_gate=p), 24, 8, 5)
    state = dict(method.state_dict(), taught_vectors=torch.nn.functional.normalize(torch.randn(5, 8), dim=1))
    gated.load_state_dict(state)
    return method, gated.eval()


def test_gate_keeps_training_labels_and_fades_the_learned_rows_elsewhere():
    from tagrank.ranking.engine import Vocabulary, top_k

    plain, gated = _gated_model()
    x = torch.randn(3, 24)
    taught = gated.taught_vectors
    assert torch.allclose(gated.scores(x, taught), plain.scores(x, taught), atol=1e-4)  # g = 1: unchanged
    far = torch.randn(40, 8)
    far = torch.nn.functional.normalize(far - (far @ taught.T) @ torch.linalg.pinv(taught).T, dim=1)[:3]
    # orthogonal to every training label: g = 0, so the block plus the learned rows' mean level
    learned = gated.learned(x)
    level = torch.einsum("bkd,vd->bvk", learned, taught).square().sum(-1).quantile(gated.options.gate_level, dim=1)
    gap = 2 - 2 * gated.knowledge(x) @ far.T
    expected = (gated.options.block_weight ** 2 * gap + level[:, None]).sqrt()
    assert torch.allclose(gated.scores(x, far), expected, atol=1e-4)
    words = torch.randn(30, 8)
    space = gated.label_space(words)
    direct = torch.linalg.vector_norm(torch.einsum("bkd,vd->bvk", gated.matrices(x), space), dim=2)
    assert torch.allclose(gated.scores(x, words), direct, atol=1e-4)
    distances, indices = top_k(gated.factors(x), Vocabulary(space), 5, "norm")
    assert torch.equal(indices, direct.sort(dim=1).indices[:, :5])


def test_name_row_gives_a_class_name_its_own_probability():
    from tagrank.ranking.engine import Vocabulary, top_k

    plain, gated = _gated_model()
    named = type(gated)(dataclasses.replace(gated.options, name_weight=2.0, name_temperature=0.05), 24, 8, 5)
    named.load_state_dict(gated.state_dict())
    named.eval()
    x, words = torch.randn(3, 24), torch.randn(30, 8)
    space = named.label_space(words)
    assert space.shape == (30, 2 * 8 + 2 + 1000)
    A = named.matrices(x)
    direct = torch.linalg.vector_norm(torch.einsum("bkd,vd->bvk", A, space), dim=2)
    assert torch.allclose(named.scores(x, words), direct, atol=1e-4)
    distances, indices = top_k(named.factors(x), Vocabulary(space), 5, "norm")
    assert torch.equal(indices, direct.sort(dim=1).indices[:, :5])
    # the added term is β²(1 − p_c)² for a tag that is class c's name vector (φ = 1 there, ≈ 0 elsewhere
    # when the class vectors are far apart)
    probs = named.knowledge.probabilities(x)
    c = int(probs[0].argmax())
    name = named.knowledge.class_vectors[c:c + 1]
    added = named.scores(x[:1], name).square() - gated.scores(x[:1], name).square()
    phi = named.knowledge.name_match(name, 0.05)[0]
    expected = 4.0 * (1 - probs[0] @ phi).square()
    assert torch.allclose(added[0, 0], expected, atol=1e-3) and phi[c] == pytest.approx(1.0, abs=1e-5)
    # a class's name is its own kind of tag for the confidence; without the name row there is one kind
    assert named.tag_kinds(named.label_space(name)).tolist() == [1] and gated.tag_kinds(gated.label_space(name)) is None
    assert named.tag_kinds(named.label_space(torch.cat([name, -name]))).tolist() == [1, 0]
    # dominant, the row ranks the names of the classes by their probabilities
    dominant = type(gated)(dataclasses.replace(gated.options, name_weight=1e4, name_temperature=0.001), 24, 8, 5)
    dominant.load_state_dict(gated.state_dict())
    top = probs[0].topk(3).indices
    order = dominant.eval().scores(x[:1], named.knowledge.class_vectors[top.flip(0)]).argsort(dim=1)
    assert order[0].tolist() == [2, 1, 0]


def test_name_row_needs_the_block():
    from tagrank.methods.transform import Transform, TransformOptions

    with pytest.raises(TagrankError, match="method.name_weight"):
        Transform(TransformOptions(k=4, name_weight=3.0), 24, 8, 5)


def test_unnamed_gate_sets_the_exponent_on_tags_that_name_no_class():
    _, gated = _gated_model(p=8.0)
    options = dataclasses.replace(gated.options, name_weight=2.0, name_temperature=0.05, unnamed_gate=1.0)
    split = type(gated)(options, 24, 8, 5)
    split.load_state_dict(gated.state_dict())
    knowledge = split.knowledge
    class_name = knowledge.class_vectors[int(knowledge.class_known.float().argmax())][None]
    words = torch.cat([class_name, torch.nn.functional.normalize(torch.randn(20, 8), dim=1)])
    names = knowledge.name_match(words, 0.05)
    nearest = (words @ split.taught_vectors.T).amax(dim=1).clamp(0, 1)
    named = names.amax(dim=1)
    assert named[0] == pytest.approx(1.0, abs=1e-5)
    expected = nearest ** (8.0 * named + 1.0 * (1 - named))
    assert torch.allclose(split.gate(words, names), expected)
    assert split.gate(words, names)[0] == pytest.approx(float(nearest[0] ** 8), rel=1e-4)  # a class name: p
    space = split.label_space(words)  # and the ranking still reads it as ‖A x‖
    x = torch.randn(3, 24)
    direct = torch.linalg.vector_norm(torch.einsum("bkd,vd->bvk", split.matrices(x), space), dim=2)
    assert torch.allclose(split.scores(x, words), direct, atol=1e-4)


def test_unnamed_gate_needs_the_name_row_and_the_gate():
    from tagrank.methods.transform import Transform, TransformOptions

    with pytest.raises(TagrankError, match="method.unnamed_gate"):
        Transform(TransformOptions(k=4, backbone_block=True, learned_gate=8.0, unnamed_gate=1.0), 24, 8, 5)


@pytest.mark.parametrize("field,value,needle", [("lr", float("nan"), "train.lr"), ("lr", -1.0, "train.lr"),
                                                ("seed", -5, "train.seed"), ("seed", 99999999999999999999999, "train.seed"),
                                                ("batch_size", 0, "train.batch_size")])
def test_numbers_no_run_can_use_are_refused_before_training(field, value, needle, toy, tmp_path):
    data, features, vectors = toy
    config = small_config("transform")
    setattr(config.train, field, value)
    with pytest.raises(TagrankError, match=needle):
        train(config, data, features, vectors, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_a_diverging_run_or_nan_features_stop_with_one_line(toy, tmp_path):
    data, features, vectors = toy
    config = small_config("transform")
    config.train.lr = 1e30
    with pytest.raises(TagrankError, match="diverged in epoch 1.*lower --lr"):
        train(config, data, features, vectors, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "model.json").exists()
    broken = Features(features.paths, features.features.copy(), features.flipped)
    broken.features[3, 0] = np.nan
    with pytest.raises(TagrankError, match="NaN or infinite features for 1 photo"):
        train(small_config("transform"), data, broken, vectors, tmp_path / "other", progress=False)


def test_training_never_writes_into_a_users_folder_or_resumes_with_other_vectors(toy, tmp_path):
    data, features, vectors = toy
    (tmp_path / "thesis").mkdir()
    (tmp_path / "thesis" / "thesis.txt").write_text("mine")
    with pytest.raises(TagrankError, match="refusing to overwrite"):
        train(small_config("transform"), data, features, vectors, tmp_path / "thesis", progress=False)
    assert sorted(p.name for p in (tmp_path / "thesis").iterdir()) == ["thesis.txt"]
    train(small_config("transform", epochs=1), data, features, vectors, tmp_path / "run", progress=False)
    rng = np.random.default_rng(7)
    other = WordVectors.from_file(write_word2vec_text(tmp_path / "other.txt",
                                                      {t: rng.normal(size=8).tolist() for t in LABELS}))
    with pytest.raises(TagrankError, match="another config, label set or label vectors"):
        train(small_config("transform", epochs=2), data, features, other, tmp_path / "run", resume=True, progress=False)


def test_edited_weights_and_descriptions_are_named(toy, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from tagrank.ranking.confidence import Calibration

    data, features, vectors = toy
    train(small_config("transform", epochs=1), data, features, vectors, tmp_path / "run", progress=False)
    weights = tmp_path / "run" / "model.safetensors"
    with safe_open(str(weights), framework="pt") as f:
        header = f.metadata()
    tensors = load_file(weights)
    name = next(k for k, v in tensors.items() if v.is_floating_point())
    save_file({**tensors, name: tensors[name].half()}, weights, metadata=header)
    with pytest.raises(TagrankError, match=f"{name} is torch.float16"):
        TaggingModel.load(tmp_path / "run")
    nan = tensors[name].clone()
    nan.view(-1)[0] = float("nan")
    save_file({**tensors, name: nan}, weights, metadata=header)
    with pytest.raises(TagrankError, match="NaN or infinite"):
        TaggingModel.load(tmp_path / "run")
    with pytest.raises(TagrankError, match="unknown field.*'colour'"):
        Calibration.from_dict({"reference": ["a"], "colour": 1})


def test_a_mosaic_source_is_made_of_the_seen_labels_photos_and_made_again_the_same(tmp_path):
    from PIL import Image

    from tagrank.config import check_numbers
    from tagrank.images.datasets import Dataset
    from tagrank.images.mosaics import mosaic_dataset
    from tagrank.training.trainer import training_data

    colours = {"sea": (0, 0, 200), "grass": (0, 160, 0), "sand": (200, 200, 120), "night": (20, 20, 20),
               "fire": (255, 0, 0)}
    for label, colour in colours.items():
        (tmp_path / "photos" / label).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (48, 40), colour).save(tmp_path / "photos" / label / f"{i}.jpg", quality=95)
    (tmp_path / "unseen.txt").write_text("fire\n")
    config = load_config()
    config.backbone.cache_dir = str(tmp_path / "cache")
    config.data.sources = [SourceConfig("imagefolder", str(tmp_path / "photos"), unseen=str(tmp_path / "unseen.txt")),
                           SourceConfig("imagefolder", str(tmp_path / "photos"), weight=0.5, mosaics=12)]
    data, unseen = training_data("mixture", None, config)
    assert unseen == ["fire"] and "fire" not in data.labels
    made = np.flatnonzero(data.source == 1)
    assert len(made) == 12 and all(2 <= data.matrix[i].sum() <= 4 for i in made)
    assert all(p.startswith(str(tmp_path / "cache" / "mosaics")) for p in data.paths[made[0]:])
    for i in made:  # no photo of the held-out label in any mosaic, and each tile's label is the mosaic's
        pixels = np.asarray(Image.open(data.paths[i])).reshape(-1, 3).astype(int)
        assert not ((pixels[:, 0] > 200) & (pixels[:, 1] < 60)).any()
        shown = {label for label, colour in colours.items() if (np.abs(pixels - colour).max(axis=1) < 30).mean() > 0.05}
        assert shown == set(data.tags_of(i))
    again, _ = training_data("mixture", None, config)
    assert again.paths == data.paths and (again.matrix == data.matrix).all()
    two_labels = Dataset("pairs", ["a"], [data.paths[0]], ["sea", "sand"], np.ones((1, 2), bool))
    with pytest.raises(TagrankError, match="pairs: mosaics need one label per photo"):
        mosaic_dataset(two_labels, 3, tmp_path / "m", 0)
    config.data.sources[1].mosaics = -1
    with pytest.raises(TagrankError, match=r"data.sources\[1\].mosaics"):
        check_numbers(config)


def test_half_weights_store_float16_and_rank_as_calibrated(toy, tmp_path):
    from safetensors import safe_open

    data, features, vectors = toy
    config = small_config("transform", epochs=2)
    full = train(config, data, features, vectors, tmp_path / "full", progress=False)
    config.train.half_weights = True
    half = train(config, data, features, vectors, tmp_path / "half", progress=False)
    stored = {}
    for name in ("full", "half"):
        with safe_open(tmp_path / name / "model.safetensors", "pt") as f:
            stored[name] = [f.get_tensor(k) for k in f.keys()]
    assert {t.dtype for t in stored["half"]} == {torch.float16} and {t.dtype for t in stored["full"]} == {torch.float32}
    assert sum(t.nbytes for t in stored["half"]) * 2 == sum(t.nbytes for t in stored["full"])
    loaded = TaggingModel.load(tmp_path / "half")
    assert loaded.meta["weights_dtype"] == "float16"
    assert all(p.dtype == torch.float32 for p in loaded.method.parameters())
    x, words = torch.from_numpy(features.features[:5]), torch.from_numpy(vectors.encode(LABELS)).float()
    with torch.no_grad():  # the file ranks exactly as the model the confidence was fitted on
        assert torch.equal(loaded.method.scores(x, words), half.model.method.scores(x, words))
        assert not torch.equal(loaded.method.scores(x, words), full.model.method.scores(x, words))
    assert loaded.meta["confidence"] == half.model.meta["confidence"]
