import logging

import numpy as np
import pytest
import torch

from tagrank.errors import TagrankError
from tagrank.ranking.engine import Vocabulary
from tagrank.ranking.search import ClusteredVocabulary, FaissVocabulary, FrequentTagMemory, cluster_assignment, \
    cluster_index, make_engine, recall


def random_case(seed: int, n_vectors: int = 3000, dim: int = 12, m: int = 5, batch: int = 6, ties: bool = False):
    gen = torch.Generator().manual_seed(seed)
    vectors = torch.randn(n_vectors, dim, generator=gen)
    if ties:  # every vector four times (rows 0, V/4, V/2, 3V/4 alike): the lower index must win
        vectors = vectors[: n_vectors // 4].repeat(4, 1)
    return torch.randn(batch, m, dim, generator=gen), vectors


@pytest.mark.parametrize("reduce,m", [("norm", 5), ("norm", 20), ("dot", 1), ("cosine", 1)])
@pytest.mark.parametrize("ties", [False, True])
def test_faiss_search_gives_the_torch_scan_results(reduce, m, ties):
    factors, vectors = random_case(0, m=m, ties=ties)
    expected = Vocabulary(vectors).top_k(factors, 9, reduce)
    scores, indices = FaissVocabulary(vectors).top_k(factors, 9, reduce)
    assert torch.equal(indices, expected[1])
    torch.testing.assert_close(scores, expected[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("reduce,m", [("norm", 5), ("dot", 1), ("cosine", 1)])
@pytest.mark.parametrize("ties", [False, True])
def test_approx_search_probing_every_cluster_is_exact(reduce, m, ties):
    factors, vectors = random_case(1, m=m, ties=ties)
    engine = make_engine(vectors, "approx", cluster_index(torch.nn.functional.normalize(vectors, dim=1).numpy(), 32))
    engine.probes, engine.calibration_photos = 32, 0
    expected = Vocabulary(vectors).top_k(factors, 9, reduce)
    scores, indices = engine.top_k(factors, 9, reduce)
    assert torch.equal(indices, expected[1])
    torch.testing.assert_close(scores, expected[0], rtol=1e-5, atol=1e-5)


def test_approx_search_finds_clustered_tags_with_few_probes():
    """Tags in tight groups, an image that prefers one group: probing 2 of 64 clusters finds its top 5."""
    gen = torch.Generator().manual_seed(2)
    centres = torch.nn.functional.normalize(torch.randn(64, 16, generator=gen), dim=1)
    vectors = (centres.repeat_interleave(50, 0) + 0.05 * torch.randn(3200, 16, generator=gen))
    engine = make_engine(vectors, "approx")
    assert isinstance(engine, ClusteredVocabulary)
    engine.probes, engine.calibration_photos = 2, 0
    factors = torch.eye(16)[None] - centres[7][None, None, :] * centres[7][None, :, None]  # I - c cᵀ
    exact = Vocabulary(vectors).top_k(factors, 5, "norm")[1]
    assert torch.equal(engine.top_k(factors, 5, "norm")[1], exact)
    assert set(exact[0].tolist()) <= set(range(7 * 50, 8 * 50))


def test_approx_search_returns_k_tags_when_the_probed_clusters_hold_fewer():
    factors, vectors = random_case(3, n_vectors=200)
    assignment = np.arange(200) % 100  # 100 clusters of 2 tags
    engine = ClusteredVocabulary(vectors, lambda: (assignment, vectors[:100]), probes=1)
    engine.calibration_photos = 0
    scores, indices = engine.top_k(factors, 7, "norm")
    assert indices.shape == (6, 7) and all(len(set(row)) == 7 for row in indices.tolist())
    assert bool((scores[:, 1:] >= scores[:, :-1]).all())  # best (smallest distance) first


def test_approx_search_ranks_its_first_photos_exactly_and_then_scores_their_top_tags():
    """Calibration photos get the exact scan's top K; afterwards their frequent tags are found even where no
    probed cluster holds them, and a tag is never returned twice (frequent and in a probed cluster)."""
    import tagrank.ranking.search as search

    factors, vectors = random_case(4, n_vectors=2000, batch=8)
    index = cluster_index(torch.nn.functional.normalize(vectors, dim=1).numpy(), 64)
    calls = []
    engine = ClusteredVocabulary(vectors, lambda: calls.append(1) or (cluster_assignment(index), vectors[:64]),
                                 probes=1)
    engine.calibration_photos = 8
    exact = Vocabulary(vectors).top_k(factors, 9, "norm")
    calibration = engine.top_k(factors, 9, "norm")
    assert torch.equal(calibration[1], exact[1]) and engine.calibrated == 8
    assert not calls  # the clusters are made only for the first approximate search
    assert set(engine.frequent.tolist()) == set(
        Vocabulary(vectors).top_k(factors, search.FREQUENT_PER_PHOTO, "norm")[1].flatten().tolist())
    scores, indices = engine.top_k(factors, 9, "norm")  # the same photos again, now approximately
    assert torch.equal(indices, exact[1])  # their top 9 are frequent tags, whatever one cluster holds
    torch.testing.assert_close(scores, exact[0], rtol=1e-5, atol=1e-5)
    assert calls == [1]
    everything = engine.top_k(factors, 2000, "norm")[1]
    assert all(len(set(row)) == len(row) for row in everything.tolist())


def test_approx_search_stops_ranking_exactly_once_the_frequent_tags_hold_the_new_photos_top_tags(monkeypatch, caplog):
    """Photos alike: the second batch's top 10 are all frequent already, and once a window of such photos
    says so the search goes approximate by itself, long before its limit of photos."""
    import tagrank.ranking.search as search

    monkeypatch.setattr(search, "SHARE_WINDOW", 8)
    caplog.set_level(logging.INFO, logger="tagrank")
    factors, vectors = random_case(5, n_vectors=2000, batch=1)
    photos = factors.expand(4, -1, -1)  # four photos alike per batch
    engine = ClusteredVocabulary(vectors, lambda: (np.zeros(2000, dtype=np.int64), vectors[:1]), probes=0)
    engine.calibration_photos = 1000
    exact = Vocabulary(vectors).top_k(photos, 10, "norm")
    for batch in range(3):
        assert engine.calibrating
        assert torch.equal(engine.top_k(photos, 10, "norm")[1], exact[1])
    # shares: 0 for the first batch (nothing was frequent yet), then 1: the window of 8 reaches 1 at 12 photos
    assert engine.calibrated == 12 and engine.share == 1.0 and not engine.calibrating
    assert "held 100.0% of the last 8 photos' top 10" in caplog.text
    assert len(engine.frequent) == search.FREQUENT_PER_PHOTO
    assert torch.equal(engine.top_k(photos, 10, "norm")[1], exact[1]) and engine.calibrated == 12


def test_approx_search_recalls_the_frequent_tags_of_an_earlier_run_and_checks_them_first(tmp_path, monkeypatch,
                                                                                          caplog):
    """A second process with the same model and vocabulary starts from the first one's frequent tags: it goes
    approximate once one window of photos confirms them, instead of learning them again."""
    import tagrank.ranking.search as search

    monkeypatch.setattr(search, "SHARE_WINDOW", 8)
    caplog.set_level(logging.INFO, logger="tagrank")
    factors, vectors = random_case(5, n_vectors=2000, batch=1)
    photos = factors.expand(4, -1, -1)
    exact = Vocabulary(vectors).top_k(photos, 10, "norm")

    def engine(memory):
        made = ClusteredVocabulary(vectors, lambda: (np.zeros(2000, dtype=np.int64), vectors[:1]), probes=0,
                                   memory=memory)
        made.calibration_photos = 1000
        return made

    memory = FrequentTagMemory(tmp_path / "frequent" / "key.safetensors", len(vectors))
    first = engine(memory)
    while first.calibrating:
        first.top_k(photos, 10, "norm")
    assert first.calibrated == 12 and torch.equal(memory.recall(), first.frequent)
    second = engine(FrequentTagMemory(memory.path, len(vectors)))
    assert second.recalled == search.FREQUENT_PER_PHOTO and "recalled 50 frequent tags" in caplog.text
    for batch in range(2):
        assert second.calibrating  # still checked on a window of photos, ranked exactly
        assert torch.equal(second.top_k(photos, 10, "norm")[1], exact[1])
    assert second.calibrated == 8 and not second.calibrating and "and an earlier run (which gave 50)" in caplog.text
    assert torch.equal(second.top_k(photos, 10, "norm")[1], exact[1])
    # photos unlike the remembered ones: the window says so and it learns on (the new tags join the stored ones)
    others = engine(FrequentTagMemory(memory.path, len(vectors)))
    for seed in (11, 12):
        others.top_k(random_case(seed, n_vectors=2000, batch=4)[0], 10, "norm")
    assert others.calibrating and len(memory.recall()) > search.FREQUENT_PER_PHOTO
    # an entry for another vocabulary, or a damaged one, is not trusted
    assert FrequentTagMemory(memory.path, len(vectors) + 1).recall() is None
    memory.path.write_bytes(b"not safetensors")
    assert memory.recall() is None and engine(memory).recalled == 0


def test_approx_search_ranks_photos_with_nothing_in_common_exactly_up_to_its_limit(monkeypatch, caplog):
    import tagrank.ranking.search as search

    monkeypatch.setattr(search, "SHARE_WINDOW", 8)
    factors, vectors = random_case(6, n_vectors=3000, dim=24, m=3, batch=8)
    engine = ClusteredVocabulary(vectors, lambda: (np.arange(3000) % 30, vectors[:30]), probes=1)
    engine.calibration_photos = 16
    engine.top_k(factors, 10, "norm")
    assert engine.calibrating  # the window is not full yet
    engine.top_k(random_case(8, n_vectors=3000, dim=24, m=3, batch=8)[0], 10, "norm")  # others again
    assert engine.calibrated == 16 and engine.share < search.TARGET_SHARE and not engine.calibrating
    # the user is told that the approximate search will miss tags, and how to get every tag scored
    assert "which held only" in caplog.text and "--search exact" in caplog.text


def test_approx_search_without_probes_scores_only_the_frequent_tags_and_never_clusters():
    factors, vectors = random_case(7, n_vectors=2000, batch=8)
    calls = []
    engine = ClusteredVocabulary(vectors, lambda: calls.append(1) or (np.zeros(2000, dtype=np.int64), vectors[:1]),
                                 probes=0)
    engine.calibration_photos = 8
    engine.top_k(factors, 9, "norm")  # calibration
    frequent = engine.frequent
    scores, indices = engine.top_k(factors[:3] * 1.5, 9, "norm")
    expected = Vocabulary(vectors[frequent]).top_k(factors[:3] * 1.5, 9, "norm")
    assert torch.equal(indices, frequent[expected[1]]) and not calls
    torch.testing.assert_close(scores, expected[0], rtol=1e-5, atol=1e-5)


def test_auto_search_chooses_by_vocabulary_size(monkeypatch, caplog):
    import tagrank.ranking.search as search

    vectors = torch.randn(50, 4)
    assert isinstance(make_engine(vectors, "auto"), Vocabulary)
    monkeypatch.setattr(search, "APPROX_MIN_TAGS", 40)
    assert isinstance(make_engine(vectors, "auto"), ClusteredVocabulary)
    assert "ranking 50 tags approximately" in caplog.text  # the user is told, and how to get the exact ranking
    with pytest.raises(TagrankError, match="--search must be one of"):
        make_engine(vectors, "fastest")
    monkeypatch.setattr(search, "APPROX_MIN_TAGS", 1000)
    monkeypatch.setattr(search.FaissVocabulary, "gpus", staticmethod(lambda: 1))  # as under faiss-gpu
    assert isinstance(make_engine(vectors, "auto"), search.FaissVocabulary)  # (its index is built on first use)
    monkeypatch.setattr(search, "FAISS_MAX_ELEMENTS", 50 * 10 - 1)  # 50 x 10 quadratic features do not fit
    assert isinstance(make_engine(vectors, "auto", reduce="norm"), Vocabulary)


def test_clustered_label_index_round_trips_and_serves_approx(tmp_path):
    from conftest import write_word2vec_text

    from tagrank.labels.encoders.word_vectors import WordVectors
    from tagrank.labels.index import LabelIndex

    rng = np.random.default_rng(0)
    tags = [f"tag{i}" for i in range(400)]
    encoder = WordVectors.from_file(write_word2vec_text(tmp_path / "v.txt", {t: rng.normal(size=6).tolist() for t in tags}))
    index = LabelIndex.build(tags, encoder, clusters=16)
    assert index.manifest["index_type"] == "IVF16,Flat" and index.clusters == 16
    index.save(tmp_path / "idx")
    loaded = LabelIndex.load(tmp_path / "idx", encoder)
    assert loaded.manifest["index_type"] == "IVF16,Flat"
    np.testing.assert_array_equal(loaded.unit, index.unit)
    assignment = cluster_assignment(loaded.faiss)
    np.testing.assert_array_equal(assignment, cluster_assignment(index.faiss))
    assert sorted(set(assignment.tolist())) == list(range(16))
    assert loaded.similar("tag3", 3)[0][0] != "tag3"  # a cosine search through the IVF index
    flat = LabelIndex.build(tags, encoder)
    assert flat.manifest["index_type"] == "Flat" and flat.clusters == 0


def test_approx_centres_go_through_the_label_space():
    """A label space with a constant coordinate: the centre is mapped like a tag, not averaged after it."""
    def label_space(w):
        return torch.cat([torch.nn.functional.normalize(w, dim=1), torch.ones(len(w), 1)], dim=1)

    raw = torch.randn(500, 6, generator=torch.Generator().manual_seed(5))
    engine = make_engine(label_space(raw), "approx", raw=raw, label_space=label_space)
    assert torch.allclose(engine.centroids[:, -1], torch.ones(len(engine.centroids)))
    assert torch.allclose(engine.centroids[:, :-1].norm(dim=1), torch.ones(len(engine.centroids)))


def test_recall_counts_shared_tags_of_each_top():
    exact = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]])
    found = torch.tensor([[2, 1, 9, 3], [5, 0, 0, 0]])
    assert recall(found, exact, 2) == pytest.approx((2 / 2 + 1 / 2) / 2)
    assert recall(found, exact, 4) == pytest.approx((3 / 4 + 1 / 4) / 2)
