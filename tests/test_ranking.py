import pytest
import torch

from tagrank.ranking.engine import Vocabulary, exact_scores, explain_votes, rank_scores, select, top_k

PRECISIONS = [torch.float32, torch.bfloat16]


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
    import tagrank.ranking.engine as ranking

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


@pytest.mark.parametrize("reduce,dtype", [("norm", torch.float32), ("norm", torch.bfloat16), ("dot", None),
                                          ("cosine", None)])
def test_tied_groups_cut_by_k_keep_their_lowest_indices(reduce, dtype):
    """Every vector four times: the tag at the cut must be the first copy, whatever the GEMM rounding."""
    gen = torch.Generator().manual_seed(4)
    vectors = torch.randn(750, 12, generator=gen).repeat(4, 1)
    factors = torch.randn(6, 5 if reduce == "norm" else 1, 12, generator=gen)
    relevance = naive(factors, vectors[:750], reduce)
    _, indices = top_k(factors, Vocabulary(vectors, dtype), 9, reduce, block=1000)
    for image, row in enumerate(indices.tolist()):
        groups = relevance[image].topk(3).indices.tolist()  # the 2 whole groups, then the group at the cut
        assert row == [g + 750 * c for g in groups[:2] for c in range(4)] + [groups[2]]


def test_columns_only_some_rows_read_are_skipped_with_the_same_ranking():
    from tagrank.ranking.engine import staircase

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


@pytest.mark.parametrize("dtype", PRECISIONS)
def test_the_scan_precision_never_changes_the_ranking(dtype):
    """Low-rank A and tags nearly in its null space: tiny distances, where rounding hurts most. The
    bounded scan in either precision gives the exact scores' top k, ties to the lower index."""
    gen = torch.Generator().manual_seed(5)
    factors = torch.randn(8, 8, 24, generator=gen)  # rank 8 in 24 dimensions
    null = torch.linalg.svd(factors[0]).Vh[8:]  # image 0's null space
    near = torch.randn(3000, 16, generator=gen) @ null + 1e-3 * torch.randn(3000, 24, generator=gen)
    vectors = torch.cat([torch.randn(20000, 24, generator=gen), near, near[:50]])  # the last 50: exact repeats
    vocabulary = Vocabulary(vectors, dtype)
    assert vocabulary.uses_quadratic_form(factors, "norm")
    # The engine's exact order: every tag's exact score, ties to the lower index.
    everything = torch.arange(len(vectors)).expand(len(factors), -1)
    relevance, expected = select(-exact_scores(factors, vectors[everything], "norm"), everything, 20)
    truth = torch.linalg.vector_norm(torch.einsum("bmd,vd->bvm", factors.double(), vectors.double()), dim=2)
    for block in (None, 4096):
        scores, indices = top_k(factors, vocabulary, 20, "norm", block=block)
        assert torch.equal(indices, expected) and torch.equal(scores, -relevance)
        torch.testing.assert_close(scores.double(), truth.sort(dim=1).values[:, :20], rtol=1e-4, atol=1e-6)
        assert (indices[0] >= 20000).all()  # image 0's best are the tags near its null space
        for row in indices.tolist():  # a repeat only after its original
            assert all(t - 3000 in row[:row.index(t)] for t in row if t >= 23000)


def test_rounding_bound_holds_for_every_tag():
    from tagrank.ranking.engine import UNIT_ROUNDOFF, quadratic_features, quadratic_query, rounding_bound

    gen = torch.Generator().manual_seed(6)
    factors, vectors = torch.randn(16, 10, 30, generator=gen), torch.randn(5000, 30, generator=gen)
    features, query = quadratic_features(vectors), quadratic_query(factors)
    exact = torch.linalg.vector_norm(torch.einsum("bmd,vd->bvm", factors.double(), vectors.double()), dim=2).square()
    for dtype in PRECISIONS:
        scanned = (query.T.to(dtype) @ features.to(dtype).T).double()
        bound = rounding_bound(factors, query, dtype)[:, None] * features.norm(dim=1) + 2 * UNIT_ROUNDOFF[dtype] * scanned.abs()
        assert 0 < ((scanned - exact).abs() / bound).max() < 1


def test_scan_precision_can_be_fixed_by_environment(monkeypatch):
    from tagrank.errors import TagrankError
    from tagrank.ranking.engine import SCAN_DTYPE_ENV, scan_dtype

    scan_dtype.cache_clear()
    try:
        monkeypatch.setenv(SCAN_DTYPE_ENV, "bfloat16")
        assert scan_dtype() is torch.bfloat16
        scan_dtype.cache_clear()
        monkeypatch.setenv(SCAN_DTYPE_ENV, "float16")
        with pytest.raises(TagrankError, match="float32 or bfloat16"):
            scan_dtype()
        scan_dtype.cache_clear()
        monkeypatch.delenv(SCAN_DTYPE_ENV)
        assert scan_dtype() in PRECISIONS  # measured
    finally:
        scan_dtype.cache_clear()


def test_structured_top_k_leaves_out_only_tags_that_cannot_make_it(monkeypatch):
    """The default model's top-k prunes by bounds on the learned rows' part and the name row's: the same tags in
    the same order (ties to the lower index) and the same distances as ranking all scores, while most tags of the
    everyday vocabulary never get the k×d product; on training labels (gate 1), random vectors and repeated tags."""
    from tagrank.methods.transform import Transform
    from tagrank.ranking.engine import rank_scores
    from tagrank.tagger import Tagger

    tagger = Tagger.load()
    method = tagger.method
    x = tagger.reference_photos[:40]
    taught = tagger.prepare(tagger.calibration.reference).engine.vectors
    everyday = tagger.prepare(None).engine.vectors
    generator = torch.Generator().manual_seed(0)
    randoms = method.label_space(torch.randn(300, method.word_dim, generator=generator))
    mixed = torch.cat([taught[:100], randoms, everyday[:200], taught[:100]])  # the last 100 repeat the first
    products = []
    reach = Transform._reach
    monkeypatch.setattr(Transform, "_reach", staticmethod(lambda a, w: products.append(len(w)) or reach(a, w)))
    with torch.no_grad():
        for space, k in ((everyday, 66), (mixed, 150), (mixed, 2000)):
            expected = rank_scores(method.space_scores(x, space), k, True)
            products.clear()
            found = method.space_top_k(x, space, k)
            assert torch.allclose(found[0], expected[0], rtol=1e-6)
            # the same tags in the same order, but for neighbours closer than the sums' rounding (a tag and its
            # copy can differ in the last bit when scored in different columns of one product)
            swapped = found[1] != expected[1]
            assert swapped.float().mean() < 0.01
            assert torch.allclose(expected[0][swapped], found[0][swapped], rtol=1e-6)
            if space is everyday:
                # the learned rows' product for a part of the tags: none of the training labels (the level has
                # theirs), and under a third of the rest for these 40 photos (the shipped model: 1,624 of 5,306)
                assert products[0] == len(method.taught_vectors) and sum(products[1:]) < len(space) / 3
    for row, scores in zip(found[1].tolist(), found[0].tolist()):  # all 700 ranked: a tag and its copy score
        at = {tag: rank for rank, tag in enumerate(row)}           # the same, to the last bits
        assert all(abs(scores[at[tag]] - scores[at[tag - 600]]) <= 1e-6 * scores[at[tag]] for tag in range(600, 700))


def test_name_row_bounds_hold_the_exact_term():
    """Pruning bounds β²(1 − p·φ)² from φ's entries ≥ NAME_FLOOR: the exact term lies between the bounds, for
    photos whose p·φ is below, near and above 1 (the cells' probabilities can sum past 1), and the bounds are
    tight (within what the left-out entries can add)."""
    from tagrank.methods.transform import NAME_FLOOR, PhotoParts
    from tagrank.tagger import Tagger

    method = Tagger.load().method.eval()
    generator = torch.Generator().manual_seed(0)
    names = torch.rand(300, 1000, generator=generator) ** 8  # most entries tiny, a few near 1
    names[:, :5] = torch.tensor([1.0, 0.5, 1e-3, 2e-4, 5e-5])
    names[:100, 2:] = 1e-12  # tags like a random phrase: nothing near a name but two classes
    space = torch.cat([torch.zeros(300, method.space_dim - 1000), names], dim=1)
    p = torch.softmax(4 * torch.randn(4, 1000, generator=generator), dim=1)
    p = torch.cat([scale * p for scale in (0.3, 1, 5, 20)])
    least, most = method._name_bounds(PhotoParts(torch.zeros(16, 1, 1), probabilities=p),
                                      method._space_parts_of(space))
    exact = method.name_weight ** 2 * (1 - p @ names.T).square()
    assert ((exact >= least * (1 - 1e-5) - 1e-3) & (exact <= most * (1 + 1e-5) + 1e-3)).all()
    assert ((p @ names.T) > 1).any() and ((p @ names.T) < 1).any()  # both sides of the bound's turning point
    rest = torch.where(names >= NAME_FLOOR, 0, names)
    share = torch.minimum(p.sum(1, keepdim=True) * rest.amax(1), p.amax(1, keepdim=True) * rest.sum(1))
    slack = method.name_weight ** 2 * share * (2 + 2 * (p @ names.T) + share)  # |(1−a)² − (1−b)²| ≤ that
    assert (most - least <= slack * (1 + 1e-4) + 1e-6 * most).all()
    assert (most - least)[:, :100].max() < 1e-2  # the random phrases' bounds are tight
    # p·φ = 1 exactly, from a large entry's 0.9999 and small ones' 0.0001: the term's least value, 0, lies
    # between the bounds' ends
    names = torch.full((1, 1000), 5e-5, dtype=torch.float64)
    names[0, 0] = 1.0
    space = torch.cat([torch.zeros(1, method.space_dim - 1000, dtype=torch.float64), names], dim=1)
    p = torch.full((1, 1000), 2 / 999, dtype=torch.float64)
    p[0, 0] = 1 - 1e-4
    least, most = method._name_bounds(PhotoParts(torch.zeros(1, 1, 1), probabilities=p),
                                      method._space_parts_of(space))
    exact = method.name_weight ** 2 * (1 - p @ names.T).square()
    assert exact < 1e-12 and least <= exact <= most


def test_reference_labels_reuse_the_levels_product():
    """The training labels' learned part is the gate level's input already: the reference labels' scores reuse
    it, and equal those computed afresh."""
    from tagrank.methods.transform import Transform
    from tagrank.tagger import Tagger

    tagger = Tagger.load()
    method = tagger.method
    reference = tagger.prepare(tagger.calibration.reference).engine.vectors
    x = tagger.reference_photos[:10]
    with torch.no_grad():
        parts = method.photo_parts(x)
        reused = method.space_scores(parts, reference)
        afresh = Transform._distances(method, parts, reference)
        assert torch.equal(reused, afresh)
        assert torch.equal(method.space_scores(x, reference[:, :]), reused)
        shuffled = reference.flip(0)  # the training labels in another order: reused row by row
        assert torch.allclose(method.space_scores(parts, shuffled), afresh.flip(1), rtol=1e-6)
        others = method.label_space(torch.randn(30, method.word_dim, generator=torch.Generator().manual_seed(0)))
        mixed = torch.cat([others, reference[:50]])  # tags outside them get the product
        assert torch.allclose(method.space_scores(parts, mixed), Transform._distances(method, parts, mixed), rtol=1e-6)


@pytest.mark.parametrize("vocab", ["default", "custom"])
def test_structured_scores_equal_the_engines_and_give_the_same_top_k(vocab):
    """The default model's exact search through its structured scores (learned rows, block, name row each in
    their own form) against the engine's generic quadratic form: same scores to float tolerance, same top 50,
    over real photos' features, for the everyday vocabulary and for tags outside the shipped table."""
    from tagrank.ranking.engine import rank_scores
    from tagrank.tagger import Tagger

    tagger = Tagger.load()
    tags = None if vocab == "default" else ["kitten on a sofa", "latte art", "bike lane", "sunset", "cat", "mug",
                                            "espresso", "thunderstorm", "wedding cake", "tabby"]
    prepared = tagger.prepare(tags)
    assert tagger._structured(prepared)
    x = tagger.reference_photos[:48]
    with torch.no_grad():
        structured = tagger.method.space_scores(x, prepared.engine.vectors)
        generic = tagger._scores(x, prepared, tagger.method.factors(x))
        assert torch.allclose(structured, generic, rtol=1e-5, atol=1e-4)
        k = min(50, len(prepared.tags))
        via_engine = prepared.engine.top_k(tagger.method.factors(x), k, tagger.method.reduce)
        via_parts = tagger._structured_top_k(x, prepared, k)
    assert torch.allclose(via_engine[0], via_parts[0], rtol=1e-5)
    # the same tags in the same order, but for neighbours closer than the two forms' rounding (none here)
    swapped = via_engine[1] != via_parts[1]
    assert torch.allclose(via_engine[0][swapped], via_parts[0][swapped], rtol=1e-6)
    assert swapped.float().mean() < 0.005 and torch.equal(rank_scores(generic, k, True)[1], via_engine[1])


def test_top_k_of_a_plain_transform_ranks_every_tag():
    """Without the block there is nothing to bound the learned rows by: the top k of all scores."""
    from tagrank.methods.transform import Transform, TransformOptions
    from tagrank.ranking.engine import rank_scores

    torch.manual_seed(0)
    method = Transform(TransformOptions(k=4, hidden=[16]), 24, 8, 5).eval()
    x, space = torch.randn(3, 24), method.label_space(torch.randn(40, 8))
    with torch.no_grad():
        found, expected = method.space_top_k(x, space, 7), rank_scores(method.space_scores(x, space), 7, True)
    assert torch.equal(found[1], expected[1]) and torch.equal(found[0], expected[0])
