"""Confidence: the isotonic fit, calibration error, and what a trained model's Tagger returns."""

import numpy as np
import pytest
import torch

from tagrank.ranking.confidence import Calibration, calibrate, fit_isotonic, interpolate, reliability
from tagrank.errors import TagrankError


def test_isotonic_fit_follows_a_curve_no_logistic_can():
    # Two kinds of tags: a steep logistic for most, a flat 55 % plateau in the middle (what a mixture of
    # datasets gave the default model); the fit must follow it and stay monotone.
    rng = np.random.default_rng(0)
    z = rng.normal(size=200_000) * 2
    truth = np.where((z > 1) & (z < 2.5), 0.55, 1 / (1 + np.exp(-(3.0 * z - 6.0))))
    y = rng.random(len(z)) < truth
    zs, ps = fit_isotonic(z, y)
    assert len(zs) <= 200 and np.all(np.diff(zs) > 0) and np.all(np.diff(ps) > 0)
    at = np.array([-2.0, 1.5, 2.0, 4.0])
    fitted = interpolate(torch.tensor(at), torch.tensor(zs), torch.tensor(ps)).numpy()
    assert np.allclose(fitted, [0.0, 0.55, 0.55, 1.0], atol=0.05)
    assert np.allclose(np.interp(at, zs, ps), fitted)  # the torch curve is numpy's interp
    with pytest.raises(TagrankError, match="both relevant and irrelevant"):
        fit_isotonic(z, np.zeros_like(z))


def test_the_top_of_a_curve_rests_on_enough_relevant_pairs():
    # 20,000 pairs, right 30 % of the time above z = 2 (~140 relevant pairs there): the curve's top must say
    # about 0.3, not the rate of a sliver of two pairs between interleaved quantile edges (one right: 0.5).
    tops = []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        z = rng.normal(size=20_000)
        y = rng.random(len(z)) < np.where(z > 2, 0.3, 0.01)
        tops.append(fit_isotonic(z, y)[1][-1])
    assert np.mean(np.abs(np.array(tops) - 0.3)) < 0.07 and max(tops) < 0.5


def test_a_tag_kind_with_few_relevant_pairs_reads_the_pooled_curve():
    from tagrank.ranking.confidence import KIND_RELEVANT

    rng = np.random.default_rng(4)
    relevance = rng.normal(size=(3000, 10))
    truth = rng.random(relevance.shape) < 1 / (1 + np.exp(-(3 * relevance - 5)))
    kinds = np.array([0] * 9 + [1])
    truth[:, 9] = False
    truth[: KIND_RELEVANT - 1, 9] = True  # kind 1: one relevant pair short of a curve of its own
    fitted = calibrate(relevance, truth, [f"t{i}" for i in range(10)], kinds=kinds)
    assert fitted.kind_knots[1] == fitted.knots and fitted.kind_knots[0] != fitted.knots
    truth[KIND_RELEVANT - 1, 9] = True
    assert calibrate(relevance, truth, [f"t{i}" for i in range(10)], kinds=kinds).kind_knots[1] != fitted.knots


def test_a_logistic_calibration_of_an_older_model_still_loads():
    old = Calibration.from_dict({"slope": 2.0, "intercept": -1.0, "reference": ["a"], "ece": 0.1})
    assert torch.allclose(old.confidence(torch.tensor([0.5])), torch.tensor([0.5]))


def test_reliability_of_a_calibrated_and_an_overconfident_model():
    rng = np.random.default_rng(1)
    p = rng.random(50000)
    y = rng.random(50000) < p
    ece, bins = reliability(p, y)
    assert ece < 0.01 and len(bins) == 10 and sum(b["pairs"] for b in bins) == 50000
    assert reliability(np.clip(p * 2, 0, 1), y)[0] > 0.1


def test_calibration_is_vocabulary_independent_and_skips_unknown_pairs():
    rng = np.random.default_rng(2)
    truth = rng.random((300, 20)) < 0.2
    relevance = truth * 2.0 + rng.normal(size=truth.shape)
    known = np.ones(truth.shape, bool)
    known[:, 10:] = False
    fitted = calibrate(relevance, truth, [f"t{i}" for i in range(20)], known)
    assert "3000 (photo, label) pairs" in fitted.fitted_on and "cross-fitted" in fitted.fitted_on
    assert fitted.ece < 0.05 and fitted.slope is None
    z = torch.linspace(-3, 3, 7)
    sure = fitted.confidence(z)
    assert (sure >= 0).all() and (sure <= 1).all() and (sure.diff() >= 0).all() and sure[-1] > sure[0]  # bounded, monotone
    assert Calibration.from_dict(fitted.to_dict()) == fitted and Calibration.from_dict(None) is None
    # Too few photos to cross-fit (one photo, or a half with nothing relevant): reliability on the fit's pairs
    few = calibrate(relevance[:1], truth[:1] | np.eye(1, 20, dtype=bool), [f"t{i}" for i in range(20)])
    assert "on the fitted pairs" in few.fitted_on and few.ece is not None


def test_a_curve_per_tag_kind():
    # Two kinds of tags whose relevance means different things: kind 0 steep, kind 1 flat.
    rng = np.random.default_rng(3)
    relevance = rng.normal(size=(2000, 20))
    kinds = np.arange(20) % 2
    chance = np.where(kinds == 0, 1 / (1 + np.exp(-(4 * relevance - 4))), 1 / (1 + np.exp(-(relevance - 2))))
    truth = rng.random(relevance.shape) < chance
    fitted = calibrate(relevance, truth, [f"t{i}" for i in range(20)], kinds=kinds)
    assert len(fitted.kind_knots) == 2 and "2 tag kinds" in fitted.fitted_on
    z = torch.tensor([2.0, 2.0])
    steep, flat = fitted.confidence(z, torch.tensor([0, 1])).tolist()
    assert steep == pytest.approx(0.98, abs=0.05) and flat == pytest.approx(0.5, abs=0.1)
    assert flat < float(fitted.confidence(z[:1])) < steep  # without kinds: the pooled curve
    assert Calibration.from_dict(fitted.to_dict()) == fitted


def test_trained_model_returns_confidences_users_can_threshold(tmp_path):
    from tagrank.tagger import Tagger
    from tagrank.training.trainer import train
    from tests.test_train import small_config, toy as toy_fixture  # noqa: F401

    data, features, vectors = toy_fixture.__wrapped__(tmp_path)
    result = train(small_config("transform", epochs=6), data, features, vectors, tmp_path / "run", progress=False)
    calibration = result.model.meta["confidence"]
    assert calibration["reference"] == data.labels and 0 <= calibration["ece"] < 0.2
    tagger = Tagger(result.model.method, None, vectors, result.model.meta, data.labels)
    prepared = tagger.prepare(data.labels)
    ranked = tagger.rank_features(features.features[:20], prepared, top=12)
    for tags in ranked:
        sure = [t["confidence"] for t in tags]
        assert all(0 <= c <= 1 for c in sure) and sure == sorted(sure, reverse=True)
    # Confidence is comparable across photos: a cut keeps a different number of tags per photo.
    kept = tagger.rank_features(features.features[:20], prepared, top=12, threshold=0.5)
    assert len({len(tags) for tags in kept}) > 1 and all(t["confidence"] >= 0.5 for tags in kept for t in tags)
    # The same tag gets the same confidence whatever else is ranked with it (a fixed reference set).
    alone = tagger.rank_features(features.features[:1], tagger.prepare(data.labels[:3]), top=3)[0]
    together = {t["tag"]: t["confidence"] for t in ranked[0]}
    assert all(abs(t["confidence"] - together[t["tag"]]) < 1e-5 for t in alone)
    for bad in (1.5, -0.1, float("nan")):
        with pytest.raises(TagrankError, match="between 0 and 1"):
            tagger.rank_features(features.features[:1], prepared, threshold=bad)
    uncalibrated = Tagger(result.model.method, None, vectors, {**result.model.meta, "confidence": None}, data.labels)
    with pytest.raises(TagrankError, match="no confidence calibration"):
        uncalibrated.rank_features(features.features[:1], prepared, threshold=0.5)


def test_hub_prior_is_the_mean_of_each_tags_best_share():
    from tagrank.ranking.confidence import hub_prior

    z = torch.tensor([[0.0, 5.0], [1.0, 5.0], [2.0, -5.0], [3.0, -5.0]])
    assert torch.allclose(hub_prior(z, 0.5), torch.tensor([2.5, 5.0]))  # the best 2 of 4 photos
    assert torch.allclose(hub_prior(z, 0.01), torch.tensor([3.0, 5.0]))  # at least one photo


def test_a_tag_relevant_to_every_photo_is_lowered_by_its_usual_best(tmp_path):
    """A model trained with confidence.hub_weight keeps its reference photos and ranks a tag by z − λ·usual best,
    with curves fitted on those z: a 'hub' tag (relevant-looking for every photo) leaves the top."""
    from tagrank.model import TaggingModel
    from tagrank.tagger import Tagger
    from tagrank.training.trainer import train
    from tests.test_train import small_config, toy as toy_fixture  # noqa: F401

    data, features, vectors = toy_fixture.__wrapped__(tmp_path)
    config = small_config("transform", epochs=6)
    config.confidence.hub_weight, config.confidence.reference_photos, config.confidence.hub_share = 1.0, 12, 0.25
    result = train(config, data, features, vectors, tmp_path / "run", progress=False)
    model = TaggingModel.load(tmp_path / "run")
    assert model.reference_photos.shape == (12, features.features.shape[1])
    assert model.reference_photos.dtype == torch.float16
    assert model.meta["confidence"]["hub_weight"] == 1.0 and model.meta["confidence"]["hub_share"] == 0.25
    tagger = Tagger(model.method, None, vectors, model.meta, data.labels, reference_photos=model.reference_photos)
    prepared = tagger.prepare(data.labels)
    usual = tagger._usual_best(prepared)
    assert usual.shape == (len(data.labels),) and torch.isfinite(usual).all()
    ranked = tagger.rank_features(features.features[:20], prepared, top=len(data.labels))
    for tags in ranked:
        sure = [t["confidence"] for t in tags]
        assert sure == sorted(sure, reverse=True)
    # Without the reference photos the model's confidence cannot be computed: refused, not guessed.
    with pytest.raises(TagrankError, match="reference photos"):
        Tagger(model.method, None, vectors, model.meta, data.labels)
    # The same weights without the correction: a tag whose usual best is higher drops relative to the others.
    plain = Tagger(model.method, None, vectors, {**model.meta, "confidence": {**model.meta["confidence"],
                                                                              "hub_weight": 0.0}}, data.labels)
    hub = data.labels[int(usual.argmax())]
    rank_with = np.mean([[t["tag"] for t in tags].index(hub) for tags in ranked])
    rank_without = np.mean([[t["tag"] for t in tags].index(hub)
                            for tags in plain.rank_features(features.features[:20], plain.prepare(data.labels),
                                                            top=len(data.labels))])
    assert rank_with >= rank_without
    assert result.model.reference_photos is not None


def test_each_tag_kind_has_its_own_hub_weight():
    """kind_hub_weights: λ per tag kind, taken off before the fit (a generic name is right on many photos, so its
    high usual best is lowered less); a kind the fit has no curve for reads the pooled curve."""
    rng = np.random.default_rng(5)
    relevance, kinds = rng.normal(size=(400, 6)), np.array([0, 0, 1, 1, 2, 2])
    truth = relevance > 1.0
    reference_relevance = rng.normal(size=(40, 6)) + np.array([0, 0, 0, 0, 3, 3])  # kind 2: high usual best
    one = calibrate(relevance, truth, [f"t{i}" for i in range(6)], kinds=kinds,
                    reference_relevance=reference_relevance, hub_weight=0.6)
    per_kind = calibrate(relevance, truth, [f"t{i}" for i in range(6)], kinds=kinds,
                         reference_relevance=reference_relevance, hub_weight=0.6, kind_hub_weights=[0.6, 0.6, 0.1])
    assert per_kind.kind_hub_weights == [0.6, 0.6, 0.1] and one.kind_hub_weights == []
    kinds_t = torch.tensor([[0, 2, 3]])
    assert per_kind.hub_weights(kinds_t, torch.zeros(1, dtype=torch.float64)).tolist() == [[0.6, 0.1, 0.6]]  # unknown: λ
    assert one.hub_weights(kinds_t, torch.zeros(1)) == 0.6 and per_kind.hub_weights(None, torch.zeros(1)) == 0.6
    assert Calibration.from_dict(per_kind.to_dict()) == per_kind
    # a kind beyond the fitted curves (a model calibrated before that kind existed) gets the pooled curve
    z = torch.tensor([0.5, 0.5])
    pooled = float(per_kind.confidence(z[:1]))
    assert float(per_kind.confidence(z, torch.tensor([0, 7]))[1]) == pytest.approx(pooled)
