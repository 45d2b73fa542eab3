import pytest

from tagrank.config import load_config
from tagrank.errors import TagrankError
from tests.conftest import REPO


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.toml")), ids=lambda p: p.name)
def test_shipped_configs_load(path):
    config = load_config(path)
    assert config.method_options is not None


def test_paper_defaults():
    options = load_config(method="transform").method_options
    assert (options.k, options.negatives, options.margin) == (100, 40, 1.0)


def test_bad_fields_are_named(tmp_path):
    (tmp_path / "a.toml").write_text("[train]\nepoch = 3\n")
    with pytest.raises(TagrankError, match="train.epoch"):
        load_config(tmp_path / "a.toml")
    (tmp_path / "b.toml").write_text("[method]\nname = 'transform'\nk = 'many'\n")
    with pytest.raises(TagrankError, match="method.k"):
        load_config(tmp_path / "b.toml")
    (tmp_path / "c.toml").write_text("[method]\nname = 'nope'\n")
    with pytest.raises(TagrankError, match="unknown method"):
        load_config(tmp_path / "c.toml")
    (tmp_path / "d.toml").write_text("[train\n")
    with pytest.raises(TagrankError, match="cannot parse"):
        load_config(tmp_path / "d.toml")


def test_method_flag_drops_other_methods_options():
    config = load_config(REPO / "configs" / "transform.toml", method="bce")
    assert config.method == "bce" and not hasattr(config.method_options, "k")
