import os

import numpy as np
import pytest

import tagrank.images.features as features_module
from tagrank.images.backbone import Backbone
from tagrank.images.features import FeatureCache


@pytest.fixture(scope="module")
def backbone():
    return Backbone("lite0")


def test_backbone_recognises_real_photos(backbone, photos):
    import torch

    from tagrank.images.photos import load_image

    batch = np.stack([backbone.preprocess(load_image(photos[n])) for n in ("chelsea", "coffee")])
    with torch.no_grad():
        top = backbone.classify(backbone(Backbone.to_tensor(batch))).argmax(dim=1).tolist()
    assert top[0] in (281, 282, 285) and top[1] == 967  # tabby/tiger/Egyptian cat; espresso


def test_a_photo_has_the_same_features_alone_and_in_a_batch(backbone, photos):
    import torch

    from tagrank.images.photos import load_image

    names = ("chelsea", "coffee", "rocket")
    x = Backbone.to_tensor(np.stack([backbone.preprocess(load_image(photos[n])) for n in names]))
    with torch.inference_mode():
        together = backbone(x)
        alone = torch.cat([backbone(x[i:i + 1]) for i in range(len(x))])
    assert torch.equal(alone, together)  # bit for bit: cached features must not depend on their batch


def test_cache_reuse_and_invalidation(backbone, photos, tmp_path, monkeypatch):
    paths = [str(photos[n]) for n in ("chelsea", "coffee", "rocket")]
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"nope")
    first = FeatureCache(backbone, tmp_path / "cache").get(paths + [str(bad)], progress=False)
    assert first.paths == paths and first.features.shape == (3, 1280)
    assert "bad.jpg" in first.failed[str(bad)]

    calls = []
    real = features_module.extract

    def counting(backbone, chunk, *args, **kwargs):
        calls.append(list(chunk))
        return real(backbone, chunk, *args, **kwargs)

    monkeypatch.setattr(features_module, "extract", counting)
    again = FeatureCache(backbone, tmp_path / "cache").get(paths, progress=False)  # a new process, same cache file
    assert calls == [] and np.array_equal(again.features, first.features)


def test_a_photo_is_extracted_only_when_its_content_is_new(backbone, tmp_path, monkeypatch):
    import pyarrow.parquet as pq
    from PIL import Image

    rng = np.random.default_rng(0)
    photos = [tmp_path / f"{i}.bmp" for i in range(2)]  # uncompressed: new pixels keep the file's size
    for photo in photos:
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(photo)
    first = FeatureCache(backbone, tmp_path / "cache").get(photos, progress=False)
    calls, digests = [], []
    real_extract, real_digest = features_module.extract, features_module.file_sha256
    monkeypatch.setattr(features_module, "extract",
                        lambda b, chunk, *a, **k: calls.append(chunk) or real_extract(b, chunk, *a, **k))
    monkeypatch.setattr(features_module, "file_sha256", lambda p: digests.append(p) or real_digest(p))

    os.utime(photos[0], ns=(1, 1))  # touched, or the folder provided again: same bytes, new mtime
    again = FeatureCache(backbone, tmp_path / "cache").get(photos, progress=False)
    assert calls == [] and digests == [str(photos[0])] and np.array_equal(again.features, first.features)
    FeatureCache(backbone, tmp_path / "cache").get(photos, progress=False)  # the new mtime was saved
    assert digests == [str(photos[0])]

    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(photos[1])  # edited, same size
    os.utime(photos[1], ns=(2, 2))
    edited = FeatureCache(backbone, tmp_path / "cache").get(photos, progress=False)
    assert calls == [[str(photos[1])]] and not np.array_equal(edited.features[1], first.features[1])

    moved = tmp_path / "library" / "0.bmp"  # a library moved or copied elsewhere: the same bytes, a new path
    moved.parent.mkdir()
    moved.write_bytes(photos[0].read_bytes())
    copied = FeatureCache(backbone, tmp_path / "cache").get([moved], progress=False)
    assert calls == [[str(photos[1])]] and np.array_equal(copied.features[0], first.features[0])

    # a cache written before digests: its rows are trusted while their mtime holds, and gain a digest
    cache = FeatureCache(backbone, tmp_path / "cache").path
    pq.write_table(pq.read_table(cache).drop_columns(["digest"]), cache)
    calls.clear()
    FeatureCache(backbone, tmp_path / "cache").get(photos + [moved], progress=False)
    assert calls == [] and None not in pq.read_table(cache).column("digest").to_pylist()


def test_flip_features_are_mirrored_and_share_the_cache(backbone, photos, tmp_path, monkeypatch):
    paths = [str(photos["astronaut"]), str(photos["coffee"])]
    plain = FeatureCache(backbone, tmp_path).get(paths[:1], progress=False)
    assert plain.flipped is None
    got = FeatureCache(backbone, tmp_path, flip=True).get(paths, progress=False)  # adds mirrors to the same file
    assert got.flipped.shape == got.features.shape and not np.allclose(got.flipped, got.features)
    assert np.allclose(got.features[0], plain.features[0], atol=1e-5)

    monkeypatch.setattr(features_module, "extract", lambda *a, **k: pytest.fail("should come from the cache"))
    again = FeatureCache(backbone, tmp_path, flip=True).get(paths, progress=False)
    assert np.array_equal(again.flipped, got.flipped)
    assert np.array_equal(FeatureCache(backbone, tmp_path).get(paths, progress=False).features, got.features)


@pytest.mark.parametrize("damage", ["columns", "width"])
def test_a_cache_with_the_wrong_layout_is_rebuilt(backbone, photos, tmp_path, damage, caplog):
    import pyarrow as pa
    import pyarrow.parquet as pq

    paths = [str(photos["coffee"])]
    cache = FeatureCache(backbone, tmp_path)
    if damage == "columns":
        table = pa.table({"file": ["x"], "vector": [[1.0]]})
    else:
        table = pa.table({"path": [os.path.abspath(paths[0])], "size": [1], "mtime_ns": [1],
                          "feature": pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(7, np.float32)), 7)})
    pq.write_table(table, cache.path)
    got = FeatureCache(backbone, tmp_path).get(paths, progress=False)
    assert got.features.shape == (1, 1280) and "rebuilding the feature cache" in caplog.text
    assert len(FeatureCache(backbone, tmp_path)) == 1  # rewritten in the right layout


def test_a_long_extraction_has_one_progress_bar_and_saves_as_it_goes(backbone, photos, tmp_path, monkeypatch):
    bars, writes = [], []
    real_bar = features_module.progress_bar
    monkeypatch.setattr(features_module, "progress_bar", lambda **k: bars.append(k) or real_bar(**k))
    monkeypatch.setattr(features_module, "FLUSH_SECONDS", 0.0)
    monkeypatch.setattr(FeatureCache, "_write", lambda self: writes.append(len(self._rows)))
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"p{i}.jpg")
        paths[-1].write_bytes(photos["coffee"].read_bytes())
    monkeypatch.setattr(features_module, "_chunks", lambda items, size: ([x] for x in items))
    FeatureCache(backbone, tmp_path / "cache").get(paths, progress=False)
    assert [b["total"] for b in bars] == [3] and writes[:3] == [1, 2, 3]


@pytest.mark.parametrize("name", ["lite0", "lite2"])
def test_own_efficientnet_lite_gives_timms_features_and_class_names(name):
    import torch

    from tagrank._compat import ensure_torchvision_importable
    from tagrank.images.backbone import BACKBONES, imagenet_class_names

    ensure_torchvision_importable()
    timm = pytest.importorskip("timm")
    ours = Backbone(name)
    reference = timm.create_model(BACKBONES[name].timm_name, pretrained=False).eval()
    reference.load_state_dict(ours.model.state_dict())  # timm's names: its state dict loads as it is
    size = BACKBONES[name].image_size
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        expected = reference.forward_head(reference.forward_features(x), pre_logits=True)
        assert torch.equal(ours(x), expected)
        assert torch.allclose(ours.classify(ours(x)), reference(x), atol=1e-4)  # float noise of the matmul only
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    assert imagenet_class_names() == [info.index_to_description(i).split(",")[0].strip() for i in range(1000)]
