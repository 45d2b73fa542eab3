import numpy as np
import pytest

from tagrank.errors import TagrankError
from tagrank.evaluation.metrics import average_precision, evaluate_scores, top_k_indices, top_k_metrics
from tests.conftest import SHARED, needs_shared


def test_top_k_conventions_by_hand():
    # 3 images x 4 labels; K = 2.
    truth = np.array([[1, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0]], bool)
    scores = np.array([[0.9, 0.8, 0.1, 0.0],   # predicts 0, 1 -> 1 correct
                       [0.2, 0.9, 0.8, 0.0],   # predicts 1, 2 -> 1 correct
                       [0.5, 0.5, 0.5, 0.0]])  # tie: predicts 0, 1 (lower index wins) -> 1 correct
    t = top_k_metrics(scores, truth, 2)
    # per class: Np = [2, 3, 1, 0], Nc = [2, 1, 0, 0], Ng = [2, 1, 1, 0]; class 3 has no positive: excluded
    assert t.CP == pytest.approx(np.mean([2 / 2, 1 / 3, 0 / 1]))
    assert t.CR == pytest.approx(np.mean([2 / 2, 1 / 1, 0 / 1]))
    assert t.CF1 == pytest.approx(2 * t.CP * t.CR / (t.CP + t.CR))  # not the mean of per-class F1s
    assert t.OP == pytest.approx(3 / 6) and t.OR == pytest.approx(3 / 4)
    assert t.n_plus == 2
    assert t.image_p["mean"] == pytest.approx(0.5) and t.image_r["median"] == pytest.approx(1.0)


def test_never_predicted_class_counts_precision_zero():
    truth = np.array([[1, 0], [0, 1]], bool)
    scores = np.array([[1.0, 0.0], [1.0, 0.0]])
    t = top_k_metrics(scores, truth, 1)
    assert t.class_precision.tolist() == [0.5, 0.0] and t.CP == pytest.approx(0.25)


def top_k_matrix(scores: np.ndarray, k: int) -> np.ndarray:
    """The boolean top-k indicator matrix, as scikit-learn's precision and recall take it."""
    predicted = np.zeros(scores.shape, dtype=bool)
    np.put_along_axis(predicted, top_k_indices(scores, k), True, axis=1)
    return predicted


def test_ties_broken_by_label_order():
    assert top_k_indices(np.array([[0.3, 0.7, 0.7, 0.7]]), 2).tolist() == [[1, 2]]
    assert top_k_indices(np.array([[0.7, 0.3, 0.7, 0.9]]), 3).tolist() == [[3, 0, 2]]  # a tie inside the k
    assert top_k_indices(np.array([[0.5, 0.5]]), 2).tolist() == [[0, 1]]  # k = every label


def test_top_k_indices_match_a_stable_sort_with_and_without_ties():
    import torch

    rng = np.random.default_rng(0)
    for scores in (rng.random((3000, 40), dtype=np.float32),  # ties rare
                   (np.round(rng.random((3000, 40)) * 8) / 8).astype(np.float32),  # ties in most rows
                   np.where(rng.random((3000, 40)) < 0.5, 0.0, -0.0).astype(np.float32),  # signed zeros are ties
                   (np.round(rng.random((2500, 4096)) * 64) / 64).astype(np.float32)):  # blocks of 1,024 rows
        for k in (1, 5, 39, 40):
            stable = torch.sort(-torch.from_numpy(scores), dim=1, stable=True).indices[:, :k].numpy()
            np.testing.assert_array_equal(top_k_indices(scores, k), stable)


def test_excluded_classes_listed_and_bad_inputs():
    truth = np.array([[1, 0, 0], [1, 0, 1]], bool)
    m = evaluate_scores(np.random.default_rng(0).random((2, 3)), truth, ["a", "b", "c"], ks=(1,))
    assert m.excluded == ["b"] and np.isnan(m.class_ap[1])
    with pytest.raises(TagrankError, match="differ in shape"):
        evaluate_scores(np.zeros((2, 2)), truth, ["a", "b"])
    with pytest.raises(TagrankError, match="NaN"):
        evaluate_scores(np.array([[0.1, np.nan, 0.2], [0, 0, 0]]), truth, ["a", "b", "c"])
    with pytest.raises(TagrankError, match="out of range"):
        evaluate_scores(np.zeros((2, 3)), truth, ["a", "b", "c"], ks=(4,))


def _check_against_sklearn(scores, truth, k):
    from sklearn.metrics import average_precision_score, precision_score, recall_score

    present = truth.any(axis=0)
    m = evaluate_scores(scores, truth, [str(i) for i in range(truth.shape[1])], ks=(k,))
    t = m.top_k[k]
    predicted = top_k_matrix(scores, k)
    cols = np.flatnonzero(present)
    assert t.CP == pytest.approx(precision_score(truth, predicted, average="macro", labels=cols, zero_division=0), abs=1e-6)
    assert t.CR == pytest.approx(recall_score(truth, predicted, average="macro", labels=cols, zero_division=0), abs=1e-6)
    assert t.OP == pytest.approx(precision_score(truth, predicted, average="micro", zero_division=0), abs=1e-6)
    assert t.OR == pytest.approx(recall_score(truth, predicted, average="micro", zero_division=0), abs=1e-6)
    ap = [average_precision_score(truth[:, c], scores[:, c]) for c in cols]
    assert m.mAP == pytest.approx(np.mean(ap), abs=1e-6)
    # Image-wise AP on up to 2,000 images with a positive (scikit-learn loops per image in Python).
    rows = np.flatnonzero(truth.any(axis=1))[:2000]
    mine = average_precision(scores[rows], truth[rows], axis=1)
    theirs = [average_precision_score(truth[i], scores[i]) for i in rows]
    np.testing.assert_allclose(mine, theirs, atol=1e-6)
    assert m.sample_mAP == pytest.approx(np.nanmean(average_precision(scores, truth, axis=1)), abs=1e-9)


def test_against_sklearn_on_synthetic_data_with_ties():
    rng = np.random.default_rng(3)
    truth = rng.random((400, 30)) < 0.1
    _check_against_sklearn(rng.random((400, 30)).astype(np.float32), truth, 3)
    _check_against_sklearn((np.round(rng.random((400, 30)) * 4) / 4).astype(np.float32), truth, 5)


@needs_shared
@pytest.mark.parametrize("kind", ["random", "prior"])
def test_against_sklearn_on_real_nuswide_test_labels(kind):
    from tagrank.images.datasets import load_dataset
    from tagrank.evaluation.protocols import prior_scores

    test = load_dataset("nuswide", SHARED / "nuswide", "test")
    assert test.matrix.shape == (107859, 81)
    if kind == "random":
        scores = np.random.default_rng(0).random(test.matrix.shape).astype(np.float32)
    else:
        scores = prior_scores(load_dataset("nuswide", SHARED / "nuswide", "train"), test.labels, len(test))
    for k in (3, 5):
        _check_against_sklearn(scores, test.matrix, k)


def test_average_precision_both_axes_agree_with_transpose():
    rng = np.random.default_rng(1)
    scores, truth = rng.random((50, 7)), rng.random((50, 7)) < 0.3
    np.testing.assert_allclose(average_precision(scores, truth, 1), average_precision(scores.T, truth.T, 0))


def test_top_k_accuracy_follows_the_tie_rule():
    from tagrank.evaluation.metrics import top_k_accuracy

    scores = np.array([[0.9, 0.1, 0.5], [0.2, 0.2, 0.2], [0.1, 0.3, 0.2]])
    truth = np.array([0, 1, 0])
    assert top_k_accuracy(scores, truth, ks=(1, 2, 3)) == {1: 1 / 3, 2: 2 / 3, 3: 1.0}  # a tie puts label 1 second
    with pytest.raises(TagrankError, match="top-k accuracy"):
        top_k_accuracy(scores, np.array([0, 3, 0]))


def test_hub_share_counts_the_most_frequent_tags():
    from tagrank.evaluation.metrics import hub_share

    top = np.array([[0, 1, 2], [0, 1, 3], [0, 4, 5], [0, 1, 6]])
    share, hubs = hub_share(top, hubs=2)
    assert share == 7 / 12 and hubs == [(0, 4), (1, 3)]
    # tag 0 is right on the first two photos, tag 1 on the second: only their other slots count
    unrelated = np.ones_like(top, dtype=bool)
    unrelated[0, 0] = unrelated[1, 0] = unrelated[1, 1] = False
    share, same = hub_share(top, hubs=2, unrelated=unrelated)
    assert share == 4 / 12 and same == hubs


def test_average_precision_with_infinite_and_tied_scores_matches_sklearn():
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(3)
    scores = rng.integers(0, 4, (300, 12)).astype(np.float32)
    scores[::7, 0], scores[::5, 1] = np.inf, -np.inf
    truth = rng.random((300, 12)) < 0.2
    finite = np.nan_to_num(scores, posinf=1e30, neginf=-1e30)  # scikit-learn refuses infinities
    for axis, rows in ((0, finite.T), (1, finite)):
        ours = average_precision(scores, truth, axis=axis)
        wanted = truth.T if axis == 0 else truth
        expected = [average_precision_score(t, s) if t.any() else np.nan for t, s in zip(wanted, rows)]
        np.testing.assert_allclose(ours, expected, atol=1e-12)


@pytest.mark.filterwarnings("error::UserWarning")
def test_average_precision_takes_read_only_arrays():
    # score files come back from pandas/pyarrow read-only; torch warns on those unless they are copied
    rng = np.random.default_rng(3)
    scores, truth = rng.random((40, 6), dtype=np.float32), rng.random((40, 6)) < 0.3
    expected = average_precision(scores, truth, axis=1)
    scores.setflags(write=False)
    truth.setflags(write=False)
    np.testing.assert_array_equal(average_precision(scores, truth, axis=1), expected)
