"""The everyday-tags pieces: the whole-photo view and its cells, WordNet's generic names, the name match,
the honest order of confidences, and the validation checks built from photos here."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from tagrank.images.backbone import REGION_COLUMNS, Backbone, region_evidence
from tagrank.labels.wordnet import HIERARCHY, LICENSE, generic_names


@pytest.fixture(scope="module")
def whole():
    return Backbone("lite0-whole")


@pytest.mark.parametrize("size, shape", [((64, 64), (256, 256)), ((192, 128), (224, 320)), ((128, 192), (320, 224)),
                                         ((4000, 3000), (224, 288)), ((3000, 500), (160, 448))])
def test_whole_view_keeps_the_aspect_within_the_pixel_budget(whole, size, shape):
    pixels = whole.preprocess(Image.new("RGB", size))
    assert pixels.shape == (*shape, 3) and pixels.dtype == np.uint8
    assert shape[0] % 32 == 0 and shape[1] % 32 == 0  # whole cells
    assert 0.6 < shape[0] * shape[1] / whole.pixel_budget < 1.4


def test_whole_view_sees_the_top_and_bottom_the_centre_crop_cuts(whole):
    portrait = np.zeros((400, 200, 3), np.uint8)
    portrait[:40] = 255  # a white band at the top: cropped away by the centre view, kept by the whole view
    image = Image.fromarray(portrait)
    assert whole.preprocess(image)[:8].min() > 200
    assert Backbone("lite0").preprocess(image).max() < 50


def test_whole_view_features_are_pooled_plus_cell_maxima_and_batch_by_shape(whole, photos):
    from tagrank.images.photos import load_image

    pixels = [whole.preprocess(load_image(photos[n])) for n in ("chelsea", "coffee", "astronaut", "chelsea")]
    assert len({p.shape for p in pixels}) > 1  # the photos differ in aspect
    with torch.no_grad():
        together = whole.features(pixels, batch_size=2)
        alone = torch.cat([whole.features([p]) for p in pixels])
    assert together.shape == (4, 1280 + REGION_COLUMNS) and whole.feature_dim == 1280 + REGION_COLUMNS
    assert torch.allclose(together, alone, atol=1e-4)
    pooled, cells = region_evidence(together)
    assert pooled.shape == (4, 1280) and cells.shape == (4, 1000)
    assert ((cells >= 0) & (cells <= 1)).all()
    # each class's best cell is at least as sure as the whole photo's average evidence for the top class
    with torch.no_grad():
        whole_photo = torch.softmax(whole.classify(together), dim=1)
    top = whole_photo.argmax(dim=1)
    assert (cells[torch.arange(4), top] > 0.2).all()
    assert region_evidence(pooled)[1] is None  # the centre view's features have no cells
    assert whole.signature != Backbone("lite0").signature


def test_regions_of_3x3_cells_classify_each_windows_mean_features(whole, photos):
    """lite0-whole-r3: the same pooled features; per class, the best probability over windows of 3×3 cells
    (stride one cell), each window's mean features classified as if it were a photo of its own. A thing that
    only one cell shows counts for less than in a cell of its own."""
    from tagrank.images.photos import load_image

    regions = Backbone("lite0-whole-r3")
    pixels = [regions.preprocess(load_image(photos[n])) for n in ("chelsea", "coffee")]
    with torch.no_grad():
        features = regions.features(pixels)
        expected = []
        for photo in pixels:
            cells = regions.model.forward_features(regions.to_tensor(np.stack([photo, photo])))[:1]
            windows = torch.nn.functional.avg_pool2d(cells, 3, stride=1).flatten(2).transpose(1, 2)
            expected.append(torch.softmax(regions.model.get_classifier()(windows), dim=2).amax(dim=1))
        single = whole.features(pixels)
    pooled, best = region_evidence(features)
    assert torch.equal(pooled, region_evidence(single)[0])
    assert torch.allclose(best, torch.cat(expected), atol=1e-5)
    assert not torch.allclose(best, region_evidence(single)[1], atol=1e-2)
    assert regions.signature != whole.signature and regions.feature_dim == whole.feature_dim


def test_wordnet_table_holds_the_hierarchy_of_every_imagenet_class():
    table = json.loads(HIERARCHY.read_text(encoding="utf-8"))
    assert len(table["classes"]) == 1000 and "Princeton" in LICENSE.read_text(encoding="utf-8")
    by_id = {s["id"]: s for s in table["synsets"]}
    dog = by_id["n02084071"]
    assert "dog" in dog["lemmas"] and len(dog["classes"]) > 100
    terrier = table["classes"].index("n02094114")  # Norfolk terrier
    assert terrier in dog["classes"] and terrier in by_id["n00015388"]["classes"]  # a dog, an animal
    assert len(by_id["n00001740"]["classes"]) == 1000  # entity is above everything


def test_generic_names_leave_out_abstract_tops_and_take_the_first_sense():
    names = generic_names()
    where = dict(zip(names.lemmas, range(len(names.lemmas))))
    for abstract in ("entity", "object", "whole", "organism", "artifact", "liquid", "fluid", "solid", "part"):
        assert abstract not in where
    for kept in ("animal", "food", "dog", "vehicle", "refrigerator", "icebox", "beverage", "toilet tissue"):
        assert kept in where
    assert names.synsets[where["cat"]] == "n02121620"  # the true cat, not the big cat (its second sense)


def test_name_match_gives_a_generic_name_a_share_of_the_classes_below_it():
    from tagrank.labels.encoders import load_encoder
    from tagrank.methods.conse import ConseOptions, Conse

    encoder = load_encoder("minilm")
    backbone = Backbone("lite0")
    conse = Conse.build(backbone, encoder, ConseOptions(name_weight=10.0, generality=0.5))
    words = torch.nn.functional.normalize(torch.from_numpy(encoder.encode(["dog", "Norfolk terrier", "quantum"])), dim=1)
    match = conse.knowledge.name_match(words, 0.05)
    table = json.loads(HIERARCHY.read_text(encoding="utf-8"))
    dogs = next(s for s in table["synsets"] if s["id"] == "n02084071")["classes"]
    norfolk = table["classes"].index("n02094114")
    share = len(dogs) ** -0.5
    assert torch.allclose(match[0, dogs], torch.full((len(dogs),), share), atol=0.02)
    assert match[0].max() < share + 0.02  # nothing outside 'dog' counts more
    assert match[1, norfolk] > 0.99 and match[1, norfolk] > match[0, norfolk]  # the specific name, fully
    assert match[2].max() < 0.05
    # ConSE ranks with the name term: cos(v, w) + mu p.phi(w) computed by the engine equals the direct formula
    features = torch.randn(3, 1280)
    scores = conse.scores(features, torch.from_numpy(encoder.encode(["dog", "Norfolk terrier", "quantum"])))
    p = conse.knowledge.probabilities(features)
    expected = conse.knowledge.direction(p) @ words.T + 10.0 * p @ match.T
    assert torch.allclose(scores, expected, atol=1e-4)


def test_generic_names_survive_saving_and_loading(tmp_path):
    from tagrank.labels.encoders import load_encoder
    from tagrank.methods.conse import ConseOptions, Conse

    encoder = load_encoder("minilm")
    conse = Conse.build(Backbone("lite0"), encoder, ConseOptions(name_weight=10.0, generality=0.3))
    fresh = Conse(ConseOptions(name_weight=10.0, generality=0.3), 1280, encoder.dim)
    fresh.load_state_dict(conse.state_dict())
    assert torch.equal(fresh.knowledge.generic_pairs, conse.knowledge.generic_pairs)
    assert len(fresh.knowledge.generic_vectors) == len(generic_names().lemmas)


def test_the_order_is_the_confidence_order_on_many_photos(photos):
    """Every list a user gets reads top-down by confidence, also where two tag kinds have two curves."""
    from tagrank.evaluation.everyday import confidence_monotone
    from tagrank.tagger import Tagger

    tagger = Tagger.load()
    assert tagger.calibration is not None
    rng = np.random.default_rng(0)
    real = tagger.rank([photos[n] for n in photos], top=10).results
    features = torch.from_numpy(np.abs(rng.normal(0.5, 0.6, size=(200, tagger.method.feature_dim))).astype(np.float32))
    ranked = tagger.rank_features(features, tagger.prepare(), top=10)
    assert confidence_monotone([r["tags"] for r in real]) and confidence_monotone(ranked)
    top5 = tagger.rank_features(features, tagger.prepare(), top=5)
    assert all([t["tag"] for t in a] == [t["tag"] for t in b[:5]] for a, b in zip(top5, ranked))  # a prefix
    assert all([t["rank"] for t in tags] == list(range(1, 11)) for tags in ranked)


def test_synonyms_share_a_group_and_a_list_names_each_thing_once():
    from tagrank.labels.wordnet import synonym_groups
    from tagrank.tagger import Tagger, _first_of_groups

    tags = ["animal", "creature", "Siamese cat", "siamese", "coffee", "espresso", "dog", "domestic  dog", "sky"]
    g = synonym_groups(tags)
    assert g[0] == g[1] and g[2] == g[3] and g[6] == g[7] and g[8] == -1
    assert len({g[0], g[2], g[4], g[5], g[6]}) == 5  # a name above a class is not the class's synonym
    # the later tags of a group move to the end of the list; the others keep their order
    groups = torch.tensor([0, 0, 1, -1, -1, 1])
    indices = torch.tensor([[1, 3, 0, 2, 5, 4]])
    scores = torch.arange(6.0)[None]
    _, kept, sure = _first_of_groups(scores, indices, scores.clone(), groups)
    assert kept.tolist() == [[1, 3, 2, 4, 0, 5]] and sure.tolist() == [[0, 1, 3, 5, 2, 4]]
    # the default model over the everyday vocabulary: no two tags of a synset in one list
    tagger = Tagger.load()
    vocab = tagger.prepare()
    rng = np.random.default_rng(1)
    features = torch.from_numpy(np.abs(rng.normal(0.5, 0.6, size=(100, tagger.method.feature_dim))).astype(np.float32))
    where = {t: i for i, t in enumerate(vocab.tags)}
    for tags in tagger.rank_features(features, vocab, top=10):
        named = [int(vocab.groups[where[t["tag"]]]) for t in tags if vocab.groups[where[t["tag"]]] >= 0]
        assert len(named) == len(set(named)) and len(tags) == 10


def test_mosaics_are_reproducible_multi_object_photos(tmp_path, photos):
    from tagrank.images.mosaics import make_mosaics

    paths = [str(photos[n]) for n in ("chelsea", "coffee", "astronaut", "rocket", "horse")]
    first = make_mosaics(paths, [0, 1, 2, 3, 4], tmp_path / "a", 12, seed=3)
    again = make_mosaics(paths, [0, 1, 2, 3, 4], tmp_path / "b", 12, seed=3)
    assert first.tiles == again.tiles
    assert all(open(a, "rb").read() == open(b, "rb").read() for a, b in zip(first.paths, again.paths))
    assert all(2 <= len(t) <= 4 and len(set(t)) == len(t) for t in first.tiles)
    assert {Image.open(p).size for p in first.paths} <= {(384, 256), (256, 384)}


def test_lookalikes_are_spelling_without_meaning():
    from tagrank.evaluation.everyday import is_lookalike, relatives

    quilt = relatives("n04033995")  # quilt, comforter
    assert is_lookalike("kilt", "quilt", quilt) and is_lookalike("stilt", "quilt", quilt)
    assert not is_lookalike("comforter", "quilt", quilt)  # a synonym
    assert not is_lookalike("patchwork quilt", "quilt", quilt)  # shares the word
    dock = relatives("n03216828")  # dock, dockage
    assert is_lookalike("hassock", "dock", dock) and not is_lookalike("pier", "dock", dock)
    terrier = relatives("n02094114")
    assert "dog" in terrier and "norwich terrier" in terrier  # an ancestor and a sibling


def test_unrelated_slots_are_tags_naming_nothing_in_the_photo():
    """A generic name is right on every photo below it, so the hub share's 'unrelated' slots leave it out there."""
    from tagrank.evaluation.everyday import unrelated_slots

    tabby, espresso = "n02123045", "n07920052"
    lists = [["Tabby", "animal", "shower cap"], ["espresso", "cat", "beverage"], ["cat", "beverage", "dock"]]
    unrelated = unrelated_slots(lists, [[tabby], [espresso], [tabby, espresso]])  # the last: a mosaic of both
    assert unrelated.tolist() == [[False, False, True], [False, True, False], [False, False, True]]


def test_the_name_row_ranks_at_its_ranking_weight_and_trains_at_its_own():
    from tagrank.methods.transform import Transform, TransformOptions

    options = TransformOptions(k=2, hidden=[], backbone_block=True, name_weight=60.0, ranking_name_weight=90.0)
    method = Transform(options, 1280, 8, 3)
    assert method.train().name_weight == 60.0 and method.eval().name_weight == 90.0
    method.options.ranking_name_weight = None
    assert method.eval().name_weight == 60.0


def test_generic_names_are_a_tag_kind_of_their_own():
    """A tag the name row knows only as a name above several classes is kind "generic name", with its own λ
    (configs/everyday.toml generic_hub_weight); the default model's training labels hold too few generic names'
    relevant pairs for a curve of their own, so they read the pooled one (ranking.confidence.KIND_RELEVANT)."""
    from tagrank.tagger import Tagger

    tagger = Tagger.load()
    prepared = tagger.prepare(["animal", "dog", "Norfolk terrier", "espresso", "quantum physics"])
    names = tagger.method.tag_kind_names
    assert [names[k] for k in prepared.kinds.tolist()] == ["generic name", "generic name", "class name", "class name",
                                                           "unnamed"]
    calibration = tagger.calibration
    assert calibration.kind_hub_weights[names.index("generic name")] == tagger.meta["config"]["confidence"]["generic_hub_weight"]
    assert calibration.kind_knots[names.index("generic name")] == calibration.knots
    assert calibration.kind_knots[names.index("class name")] != calibration.knots
