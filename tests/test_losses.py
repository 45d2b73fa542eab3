import math

import torch

from tagrank.methods.losses import hinge_rank_loss, pairwise_ranking_loss, softmax_rank_loss, warp_loss


def test_hinge_rank_loss_matches_hand_computation():
    # One image, labels 0..4; positives {0, 1} at distances 1 and 3 -> mean positive 2.
    distances = torch.tensor([[1.0, 3.0, 2.5, 4.0, 0.5]])
    positives = torch.tensor([[True, True, False, False, False]])
    negatives = torch.tensor([[2, 3, 4]])
    # margin 1: max(0, 1+2-2.5)=0.5, max(0, 1+2-4)=0, max(0, 1+2-0.5)=2.5 -> 3.0
    assert math.isclose(hinge_rank_loss(distances, positives, negatives, 1.0).item(), 3.0)
    # margin 0 with the average positive (2): 0 + 0 + 1.5; the closest positive (1) would give 0.5
    assert math.isclose(hinge_rank_loss(distances, positives, negatives, 0.0).item(), 1.5)


def test_hinge_rank_loss_weights_and_each_pairing_by_hand():
    distances = torch.tensor([[1.0, 3.0, 2.5, 4.0, 0.5]])
    positives = torch.tensor([[True, True, False, False, False]])
    negatives = torch.tensor([[2, 3, 4]])
    weights = torch.tensor([3.0, 1.0, 9.0, 9.0, 9.0])  # only the positives' weights matter
    # weighted mean positive (3*1 + 1*3)/4 = 1.5, margin 1: 0 + 0 + 2.0
    assert math.isclose(hinge_rank_loss(distances, positives, negatives, 1.0, weights).item(), 2.0)
    # each positive against each negative, margin 1: positive 1 -> 0+0+1.5, positive 3 -> 1.5+0+3.5; / 2 positives
    assert math.isclose(hinge_rank_loss(distances, positives, negatives, 1.0, pairing="each").item(), 3.25)
    assert math.isclose(hinge_rank_loss(distances, positives, negatives, 1.0, weights, "each").item(),
                        (3 * 1.5 + 1 * 5.0) / 2)


def test_label_weights_favour_rare_labels_and_average_one_per_positive():
    from tagrank.methods.base import label_weights

    targets = torch.tensor([[1, 1, 0], [1, 0, 0], [1, 0, 0], [1, 0, 0]], dtype=torch.bool)  # counts 4, 1, 0
    w = label_weights(targets, 0.5)
    assert math.isclose(w[1].item() / w[0].item(), 2.0, rel_tol=1e-6)
    assert math.isclose((w * targets.sum(0)).sum().item() / targets.sum().item(), 1.0, rel_tol=1e-6)
    assert torch.allclose(label_weights(targets, 0.0)[:2], torch.ones(2))


def test_hinge_rank_loss_averages_images_and_masks_positive_draws():
    distances = torch.tensor([[1.0, 2.0, 3.0], [2.0, 1.0, 0.0]])
    positives = torch.tensor([[True, False, False], [False, False, False]])  # image 2 has no positive: ignored
    negatives = torch.tensor([[1, 0], [0, 1]])  # the draw of label 0 for image 1 is a positive: masked
    assert math.isclose(hinge_rank_loss(distances, positives, negatives, 1.5).item(), max(0, 1.5 + 1 - 2))


def test_softmax_rank_loss_by_hand_over_every_candidate_negative():
    distances = torch.tensor([[1.0, 3.0, 2.0, 4.0, 0.5], [1.0, 1.0, 1.0, 1.0, 1.0]])
    positives = torch.tensor([[True, True, False, False, False], [False] * 5])  # image 2: no positive, ignored
    candidates = torch.tensor([[True, True, True, True, False], [True] * 5])  # label 4 unknown for image 1
    negatives = math.exp(-2.0) + math.exp(-4.0)  # T = 1: e^{-d} of labels 2 and 3
    per_positive = [math.log1p(negatives / math.exp(-d)) for d in (1.0, 3.0)]
    loss = softmax_rank_loss(distances, positives, candidates)
    assert math.isclose(loss.item(), sum(per_positive) / 2, rel_tol=1e-6)
    weights = torch.tensor([3.0, 1.0, 9.0, 9.0, 9.0])
    weighted = softmax_rank_loss(distances, positives, candidates, weights=weights)
    assert math.isclose(weighted.item(), (3 * per_positive[0] + per_positive[1]) / 2, rel_tol=1e-6)
    # the temperature divides the distances; an image with no candidate negative costs nothing
    halved = softmax_rank_loss(distances * 2, positives, candidates, temperature=2.0)
    assert math.isclose(halved.item(), loss.item(), rel_tol=1e-6)
    lone = softmax_rank_loss(distances, positives, positives)
    assert lone.item() == 0.0
    distances.requires_grad_(True)
    softmax_rank_loss(distances, positives, positives).backward()
    assert torch.isfinite(distances.grad).all()


def test_pairwise_ranking_loss_hand_value():
    scores = torch.tensor([[2.0, 0.0, 1.0]])
    positives = torch.tensor([[True, False, False]])
    negatives = torch.tensor([[1, 2]])
    expected = (math.log1p(math.exp(0 - 2)) + math.log1p(math.exp(1 - 2))) / 2
    assert math.isclose(pairwise_ranking_loss(scores, positives, negatives).item(), expected, rel_tol=1e-6)


def test_warp_loss_weights_by_estimated_rank():
    # 5 labels, positive 0 scores 0; negatives drawn in order 1, 2, 3: first violator (margin 1) is draw 2.
    scores = torch.tensor([[0.0, -5.0, -0.5, 3.0, 0.0]])
    positives = torch.tensor([[True, False, False, False, False]])
    negatives = torch.tensor([[1, 2, 3]])
    # trials N = 2, Y = 4 negatives -> rank floor(3/2) + 1 = 2 -> L = 1 + 1/2; hinge = 1 - 0 + (-0.5) = 0.5
    assert math.isclose(warp_loss(scores, positives, negatives, 1.0).item(), 1.5 * 0.5, rel_tol=1e-6)
    # no violator -> no loss
    assert warp_loss(torch.tensor([[5.0, 0.0, 0.0]]), torch.tensor([[True, False, False]]),
                     torch.tensor([[1, 2]]), 1.0).item() == 0.0
