import numpy as np
import pytest
from PIL import Image

from tagrank.images import ImageError, find_images, load_image


def test_modes_are_converted(tmp_path):
    Image.new("CMYK", (8, 6), (0, 255, 0, 0)).save(tmp_path / "cmyk.jpg")
    Image.new("L", (8, 6), 100).save(tmp_path / "gray.png")
    Image.new("RGBA", (8, 6), (255, 0, 0, 0)).save(tmp_path / "alpha.png")  # fully transparent -> white
    Image.fromarray(np.full((6, 8), 65535, np.uint16)).save(tmp_path / "deep.png")
    for name in ("cmyk.jpg", "gray.png", "alpha.png", "deep.png"):
        im = load_image(tmp_path / name)
        assert im.mode == "RGB" and im.size == (8, 6), name
    assert load_image(tmp_path / "alpha.png").getpixel((0, 0)) == (255, 255, 255)
    assert load_image(tmp_path / "deep.png").getpixel((0, 0)) == (255, 255, 255)


def test_exif_orientation_applied(tmp_path):
    im = Image.new("RGB", (8, 4), (10, 20, 30))
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    im.save(tmp_path / "rotated.jpg", exif=exif)
    assert load_image(tmp_path / "rotated.jpg").size == (4, 8)


def test_broken_files_name_their_path(tmp_path, photos):
    data = photos["coffee"].read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (tmp_path / "garbage.jpg").write_bytes(b"not an image at all")
    for name in ("truncated.jpg", "garbage.jpg", "missing.jpg"):
        with pytest.raises(ImageError, match=name):
            load_image(tmp_path / name)


def test_decompression_bomb_rejected(tmp_path, monkeypatch):
    import tagrank.images

    Image.new("RGB", (100, 100)).save(tmp_path / "big.png")
    monkeypatch.setattr(tagrank.images, "MAX_PIXELS", 5000)
    with pytest.raises(ImageError, match="too large"):
        load_image(tmp_path / "big.png")


def test_find_images_dirs_globs_and_problems(tmp_path, photos):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.jpg").write_bytes(photos["coffee"].read_bytes())
    (tmp_path / "b.png").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "empty").mkdir()
    paths, problems = find_images([tmp_path / "sub", str(tmp_path / "*.png"), tmp_path / "nope.jpg", tmp_path / "empty"])
    assert [p.name for p in paths] == ["a.jpg", "b.png"]
    assert len(problems) == 2 and "nope.jpg" in problems[0] and "no images" in problems[1]
