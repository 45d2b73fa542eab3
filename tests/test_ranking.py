import pytest
import torch

from tagrank.ranking import Vocabulary, explain_votes, rank_scores, top_k


def naive(factors, vectors, reduce):
    projected = torch.einsum("bmd,vd->bvm", factors, vectors)
    if reduce == "norm":
        return -torch.linalg.vector_norm(projected, dim=2)
    out = projected[..., 0]
    return out / vectors.norm(dim=1) if reduce == "cosine" else out


@pytest.mark.parametrize("reduce,m", [("norm", 12), ("norm", 3), ("dot", 1), ("cosine", 1)])
@pytest.mark.parametrize("batch", [1, 40])
def test_engine_matches_naive_scoring(reduce, m, batch):
    gen = torch.Generator().manual_seed(0)
    factors = torch.randn(batch, m, 8, generator=gen)
    vectors = torch.randn(5000, 8, generator=gen)
    relevance = naive(factors, vectors, reduce)
    expected = relevance.topk(7, dim=1).indices
    for block in (None, 333):  # many blocks exercise the running merge
        scores, indices = top_k(factors, vectors, 7, reduce, block=block)
        assert torch.equal(indices, expected)
        expected_scores = relevance.gather(1, expected)
        if reduce == "norm":
            expected_scores = -expected_scores
        torch.testing.assert_close(scores, expected_scores, rtol=1e-5, atol=1e-5)


def test_transform_matrices_rank_by_norm_of_Aw():
    """The engine on R from A = QR gives the order of ‖A w‖ for k > d and k < d."""
    from tagrank.methods.transform import Transform, TransformOptions

    torch.manual_seed(0)
    vectors = torch.randn(3000, 10)
    for k in (4, 25):
        method = Transform(TransformOptions(k=k, hidden=[16]), feature_dim=6, word_dim=10, n_labels=0).eval()
        x = torch.randn(5, 6)
        with torch.no_grad():
            A = method.matrices(x)
            distances = torch.linalg.vector_norm(torch.einsum("bkd,vd->bvk", A, vectors), dim=2)
            scores, indices = top_k(method.factors(x), Vocabulary(vectors), 10, "norm")
        assert torch.equal(indices, distances.topk(10, dim=1, largest=False).indices)
        torch.testing.assert_close(scores, distances.gather(1, indices), rtol=1e-4, atol=1e-5)


def test_quadratic_path_and_direct_path_agree(monkeypatch):
    import tagrank.ranking as ranking

    torch.manual_seed(1)
    factors, vectors = torch.randn(64, 20, 20), torch.randn(4000, 20)
    cached = top_k(factors, Vocabulary(vectors), 5, "norm")
    monkeypatch.setattr(ranking, "CACHE_ELEMENTS", 0)  # forces per-block features / the direct product
    wide = top_k(factors, Vocabulary(vectors), 5, "norm")
    narrow = top_k(factors[:1], Vocabulary(vectors), 5, "norm")
    assert torch.equal(cached[1], wide[1]) and torch.equal(cached[1][:1], narrow[1])


def test_ties_broken_by_vocabulary_order():
    vectors = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    factors = torch.tensor([[[1.0, 0.0]]])
    _, indices = top_k(factors, vectors, 3, "dot", block=2)
    assert indices.tolist() == [[0, 1, 3]]
    _, indices = rank_scores(torch.tensor([[0.5, 0.9, 0.5, 0.9]]), 3, lower_is_better=False)
    assert indices.tolist() == [[1, 3, 0]]
    scores, indices = rank_scores(torch.tensor([[0.5, 0.9, 0.5]]), 2, lower_is_better=True)
    assert indices.tolist() == [[0, 2]] and scores.tolist() == [[0.5, 0.5]]


def test_explain_votes_count_rows():
    # Two rows of A: row 0 is orthogonal to tag 0, row 1 to tag 1; vocabulary of 3 tags.
    A = torch.tensor([[[0.0, 1.0], [1.0, 0.0]]])
    vectors = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    votes = explain_votes(A, vectors, torch.tensor([[0, 1, 2]]), top=1)
    assert votes.tolist() == [[1, 1, 0]]
    assert explain_votes(A, vectors, torch.tensor([[2]]), top=3).tolist() == [[2]]


@pytest.mark.parametrize("reduce", ["norm", "dot", "cosine"])
def test_tied_groups_cut_by_k_keep_their_lowest_indices(reduce):
    """Every vector four times: the tag at the cut must be the first copy, whatever the GEMM rounding."""
    gen = torch.Generator().manual_seed(4)
    vectors = torch.randn(750, 12, generator=gen).repeat(4, 1)
    factors = torch.randn(6, 5 if reduce == "norm" else 1, 12, generator=gen)
    relevance = naive(factors, vectors[:750], reduce)
    _, indices = top_k(factors, vectors, 9, reduce)
    for image, row in enumerate(indices.tolist()):
        groups = relevance[image].topk(3).indices.tolist()  # the 2 whole groups, then the group at the cut
        assert row == [g + 750 * c for g in groups[:2] for c in range(4)] + [groups[2]]


def test_columns_only_some_rows_read_are_skipped_with_the_same_ranking():
    from tagrank.ranking import staircase

    torch.manual_seed(4)
    factors = torch.randn(3, 6, 40)
    factors[:, :5, 10:] = 0  # only the last row reads columns 10..39
    factors[:, 1, 8:] = 0
    assert staircase(factors) == (10, [5])
    assert staircase(torch.randn(2, 4, 9)) == (9, [])  # nothing to skip
    vectors = torch.randn(500, 40)
    for block in (None, 77):
        scores, indices = top_k(factors, vectors, 7, "norm", block=block)
        direct = torch.linalg.vector_norm(torch.einsum("bmd,vd->bvm", factors, vectors), dim=2).sort(dim=1)
        assert torch.equal(indices, direct.indices[:, :7])
        assert torch.allclose(scores, direct.values[:, :7], atol=1e-4)
