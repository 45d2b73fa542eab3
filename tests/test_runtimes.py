"""The CNN on OpenVINO and ONNX Runtime (tagrank.images.runtimes): the same features as torch for every
whole-view shape, also when read back from the cache, the same tags, and the choice of runtime."""

import numpy as np
import pytest
import torch

from tagrank.errors import TagrankError
from tagrank.images import runtimes
from tagrank.images.backbone import Backbone

AVAILABLE = [name for name in runtimes.RUNTIMES if runtimes.installed(name)]
pytestmark = pytest.mark.skipif(not AVAILABLE, reason="neither OpenVINO nor ONNX Runtime is installed")


@pytest.fixture(scope="module")
def whole():
    """The default model's view of a photo (the whole photo and its regions), the one users convert."""
    from tagrank.tagger import default_description

    return Backbone(default_description()["backbone"]["name"])


@pytest.mark.parametrize("runtime", AVAILABLE)
def test_the_converted_network_gives_torchs_features_for_every_shape(whole, runtime, tmp_path):
    """Converted once at one shape, it must hold for every side that is a multiple of the stride (a portrait, a
    landscape, a panorama) — as converted and as read back from the cache (in float32)."""
    converted = runtimes.runtime_forward(runtime, whole, tmp_path)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    stamps = {p: p.stat().st_mtime_ns for p in files}
    reread = runtimes.runtime_forward(runtime, whole, tmp_path)
    assert files and {p: p.stat().st_mtime_ns for p in files} == stamps  # reused, not converted again
    assert all(whole.signature in p.name for p in files) and not [p for p in tmp_path.rglob("*") if p.is_dir()
                                                                    and p.parent != tmp_path]
    rng = np.random.default_rng(0)
    for height, width in ((224, 288), (288, 224), (320, 224), (256, 256), (160, 416), (96, 672)):
        x = whole.to_tensor(rng.integers(0, 256, size=(3, height, width, 3), dtype=np.uint8))
        with torch.inference_mode():
            expected = whole(x)
        for forward in (converted, reread):
            assert torch.allclose(forward(x), expected, atol=1e-4), (runtime, height, width)
    odd = whole.to_tensor(rng.integers(0, 256, size=(2, 100, 130, 3), dtype=np.uint8))
    with torch.inference_mode():  # a side off the stride: torch's own forward, exactly
        assert torch.equal(converted(odd), whole(odd))


def test_tags_on_each_runtime_equal_torchs(photos, tmp_path, monkeypatch):
    from tagrank.tagger import Tagger

    monkeypatch.setattr("tagrank.tagger._cache_dir", lambda: tmp_path)
    tagger = Tagger.load()
    images = [photos[n] for n in photos]
    on_torch = tagger.rank(images, top=10, backend="torch").results
    for runtime in AVAILABLE:
        other = tagger.rank(images, top=10, backend=runtime).results
        assert runtime in tagger._forwards
        for a, b in zip(on_torch, other):
            assert [t["tag"] for t in a["tags"]] == [t["tag"] for t in b["tags"]]
            assert np.allclose([t["score"] for t in a["tags"]], [t["score"] for t in b["tags"]], atol=1e-2)


def test_auto_takes_the_fastest_installed_runtime_for_many_photos(monkeypatch):
    assert runtimes.choose_runtime("auto", 1) == "torch"
    assert runtimes.choose_runtime("auto", runtimes.AUTO_MIN_PHOTOS) == AVAILABLE[0]
    assert runtimes.choose_runtime("torch", 10_000) == "torch"
    with pytest.raises(TagrankError, match="--backend must be one of"):
        runtimes.choose_runtime("tensorrt", 1)
    monkeypatch.setattr(runtimes, "installed", lambda name: name == "onnxruntime")
    assert runtimes.choose_runtime("auto", 10_000) == "onnxruntime"
    monkeypatch.setattr(runtimes, "installed", lambda name: False)
    assert runtimes.choose_runtime("auto", 10_000) == "torch"
    with pytest.raises(TagrankError, match=r"pip install 'tagrank\[openvino\]'"):
        runtimes.check_runtime("openvino")


def test_the_cli_refuses_an_unknown_backend_before_any_photo(cli, photos):
    result = cli("rank", str(photos["coffee"]), "--backend", "gpu")
    assert result.code != 0 and "--backend must be one of" in result.err and "Traceback" not in result.err


@pytest.mark.parametrize("runtime", AVAILABLE)
def test_training_features_on_another_runtime_are_cached_apart_from_torchs(photos, runtime, tmp_path):
    """`[backbone] runtime` extracts a training run's features on that runtime: within ~1e-4 of torch's, in a
    cache file of their own, so that torch's features (and a model trained on them) stay bit for bit."""
    from tagrank.images.features import FeatureCache

    backbone = Backbone("lite0")
    images = [str(photos[n]) for n in ("coffee", "chelsea", "rocket")]
    on_torch = FeatureCache(backbone, tmp_path).get(images, progress=False)
    other = FeatureCache(backbone, tmp_path, runtime=runtime)
    assert other.path != FeatureCache(backbone, tmp_path).path and not other.path.exists()
    got = other.get(images, progress=False)
    assert other.path.is_file() and got.paths == on_torch.paths
    assert np.allclose(got.features, on_torch.features, atol=1e-4)
    again = FeatureCache(backbone, tmp_path).get(images, progress=False)  # torch's own, untouched
    assert np.array_equal(again.features, on_torch.features)
    with pytest.raises(TagrankError, match="not auto"):
        FeatureCache(backbone, tmp_path, runtime="auto")


def test_a_training_config_names_a_runtime_that_can_run(monkeypatch):
    from tagrank.config import Config, check_numbers

    config = Config()
    config.backbone.runtime = "tensorrt"
    with pytest.raises(TagrankError, match="backbone.runtime must be one of torch"):
        check_numbers(config)
    config.backbone.runtime = "openvino"
    monkeypatch.setattr(runtimes, "installed", lambda name: False)
    with pytest.raises(TagrankError, match=r"backbone.runtime is 'openvino', which is not installed"):
        check_numbers(config)
