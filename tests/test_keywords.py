"""Keywords where photo managers read them: XMP sidecars and embedded XMP/IPTC, read back by exiftool."""

import json
import shutil
import subprocess

import pytest

pytest.importorskip("exiv2")
EXIFTOOL = shutil.which("exiftool")
needs_exiftool = pytest.mark.skipif(EXIFTOOL is None, reason="exiftool (Debian libimage-exiftool-perl) is not installed")


def _exif(path, *fields) -> dict:
    out = subprocess.run([EXIFTOOL, "-json", "-struct", "-n", *fields, str(path)], capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out)[0]


def _as_list(value) -> list:
    return value if isinstance(value, list) else [] if value is None else [value]


@pytest.fixture
def library(tmp_path, photos):
    """Two photos; one already carries a person's keywords, a date, a position and an orientation."""
    folder = tmp_path / "library"
    folder.mkdir()
    shutil.copy(photos["chelsea"], folder / "cat.jpg")
    shutil.copy(photos["coffee"], folder / "coffee.jpg")
    if EXIFTOOL:
        subprocess.run([EXIFTOOL, "-q", "-overwrite_original", "-XMP-dc:Subject=my cat", "-XMP-dc:Subject=holiday",
                        "-IPTC:Keywords=my cat", "-DateTimeOriginal=2024:05:01 10:00:00", "-GPSLatitude=48.85",
                        "-GPSLatitudeRef=N", "-Orientation#=1", "-XMP-dc:Title=Chelsea", str(folder / "cat.jpg")],
                       check=True)
    return folder


@needs_exiftool
def test_sidecars_hold_the_tags_and_a_rerun_only_does_new_photos(cli, library):
    result = cli("rank", library, "--top", "3", "--write-keywords", "xmp")
    assert result.code == 0 and "keywords written for 2 photo(s)" in result.err
    side = _exif(library / "cat.jpg.xmp")
    subject = _as_list(side["Subject"])
    assert len(subject) == 3 and "cat" in " ".join(subject)
    assert all(h.startswith("tagrank|") for h in _as_list(side["HierarchicalSubject"]))
    assert "tagrank|animal|" in " ".join(_as_list(side["HierarchicalSubject"]))  # WordNet's path above a cat
    assert (library / "coffee.jpg.xmp").is_file() and not (library / "coffee.xmp").exists()
    shutil.copy(library / "coffee.jpg", library / "new.jpg")
    again = cli("rank", library, "--top", "3", "--write-keywords", "xmp", "--format", "json")
    assert "keywords written for 1 photo(s); 2 already tagged the same way" in again.err
    assert [r["image"] for r in json.loads(again.out)] == [str(library / "new.jpg")]
    assert "written for 3 photo(s)" in cli("rank", library, "--write-keywords", "xmp", "--force").err
    assert cli("rank", library, "--write-keywords", "lightroom").code == 0 and (library / "coffee.xmp").is_file()


@needs_exiftool
def test_embedded_keywords_keep_the_persons_own_and_every_other_field(cli, library):
    photo = library / "cat.jpg"
    fields = ("-DateTimeOriginal", "-GPSLatitude", "-Orientation", "-XMP-dc:Title")
    before = _exif(photo, *fields)
    from PIL import Image

    pixels = Image.open(photo).tobytes()
    assert cli("rank", photo, "--top", "3", "--write-keywords", "embed").code == 0
    after = _exif(photo, "-XMP-dc:Subject", "-IPTC:Keywords", *fields)
    subject = _as_list(after.pop("Subject"))
    assert subject[:2] == ["my cat", "holiday"] and len(subject) == 5
    assert _as_list(after.pop("Keywords"))[0] == "my cat"
    assert after == before  # date, position, orientation, title: unchanged
    assert Image.open(photo).tobytes() == pixels
    # A re-run with fewer tags replaces only tagrank's: the person's stay.
    assert cli("rank", photo, "--top", "1", "--write-keywords", "embed", "--force").code == 0
    assert _as_list(_exif(photo, "-XMP-dc:Subject")["Subject"])[:2] == ["my cat", "holiday"]
    assert len(_as_list(_exif(photo, "-XMP-dc:Subject")["Subject"])) == 3


def test_the_image_data_is_untouched_and_the_options_checked(cli, library, tmp_path):
    from PIL import Image

    photo = library / "coffee.jpg"
    pixels = Image.open(photo).tobytes()
    assert cli("rank", photo, "--write-keywords", "embed").code == 0
    assert Image.open(photo).tobytes() == pixels
    from tagrank.keywords import read_keywords

    assert read_keywords(photo)["tagrank"] == read_keywords(photo)["subject"]
    bad = cli("rank", photo, "--write-keywords", "exif")
    assert bad.code == 2 and "--write-keywords must be one of xmp, lightroom, embed" in bad.err
    assert cli("rank", photo, "--force").code == 2


def _persons_keywords(path, subject=(), iptc=(), sidecar=False):
    """Keywords as a photo manager writes them (not tagrank): embedded XMP/IPTC, or a NAME.EXT.xmp sidecar."""
    import exiv2

    from tagrank.keywords import sidecar_path

    target = sidecar_path(path, "xmp") if sidecar else path
    image = exiv2.ImageFactory.create(exiv2.ImageType.xmp, str(target)) if sidecar else \
        exiv2.ImageFactory.open(str(target))
    image.readMetadata()
    if subject:
        value = exiv2.XmpArrayValue(exiv2.TypeId.xmpBag)
        for keyword in subject:
            value.read(keyword)
        image.xmpData().add(exiv2.XmpKey("Xmp.dc.subject"), value)
    for keyword in iptc:
        datum = exiv2.Iptcdatum(exiv2.IptcKey("Iptc.Application2.Keywords"))
        datum.setValue(keyword)
        image.iptcData().add(datum)
    image.writeMetadata()


def test_a_library_trains_on_its_owners_keywords(cli, photos, tmp_path):
    """`train library`: each photo's own keywords (sidecar, XMP, IPTC) are its labels, tagrank's own ones and
    photos without keywords are left out, and the model ranks the owner's vocabulary and any other tag."""
    from tagrank.images.datasets import load_dataset

    library = tmp_path / "library"
    library.mkdir()
    people = {"chelsea": ["my cat", "pets"], "coffee": ["breakfast"], "rocket": ["space trip"],
              "horse": ["riding holiday", "pets"]}
    for name, keywords in people.items():
        for i in range(4):
            photo = library / f"{name}{i}.jpg"
            shutil.copy(photos[name], photo)
            if i == 0:
                _persons_keywords(photo, subject=keywords, sidecar=True)
            elif i == 1:
                _persons_keywords(photo, iptc=keywords)
            else:
                _persons_keywords(photo, subject=keywords)
    shutil.copy(photos["camera"], library / "untagged.jpg")
    shutil.copy(photos["astronaut"], library / "tagged_by_tagrank.jpg")
    assert cli("rank", library / "tagged_by_tagrank.jpg", "--write-keywords", "xmp").code == 0
    data = load_dataset("library", library)
    assert sorted(data.labels) == ["breakfast", "my cat", "pets", "riding holiday", "space trip"]
    assert len(data) == 16 and int(data.matrix[:, data.labels.index("pets")].sum()) == 8
    assert len(load_dataset("library", library, keywords_from="iptc")) == 4
    result = cli("train", "library", "--root", library, "--out", tmp_path / "mine", "--epochs", "3", "--no-progress")
    assert result.code == 0, result
    assert "2 of 18 photos have no keywords" in result.err
    ranked = cli("rank", library / "chelsea2.jpg", "--model", tmp_path / "mine", "--top", "2", "--format", "json")
    assert ranked.code == 0 and {t["tag"] for t in json.loads(ranked.out)[0]["tags"]} <= set(data.labels)
    unseen = cli("rank", library / "chelsea2.jpg", "--model", tmp_path / "mine", "--vocab", "everyday", "--top", "5",
                 "--format", "json")
    assert "cat" in " ".join(t["tag"] for t in json.loads(unseen.out)[0]["tags"])  # beyond the owner's words
    bad = cli("train", "library", "--root", library, "--out", tmp_path / "x", "--keywords-from", "exif")
    assert bad.code == 2 and "--keywords-from must be one of any, sidecar, xmp, iptc" in bad.err


@needs_exiftool
def test_batch_writes_keywords_and_skips_photos_tagged_the_same_way(cli, library, tmp_path):
    """`tagrank batch --write-keywords` writes what `rank` would (the same stamp, so neither redoes the other's
    photos), keeps the tags in its shards, and records the mode so a resumed run cannot leave photos out."""
    import pandas as pd

    assert cli("rank", library / "coffee.jpg", "--top", "3", "--write-keywords", "xmp").code == 0
    before = (library / "coffee.jpg.xmp").stat().st_mtime_ns
    result = cli("batch", library, "--out", tmp_path / "run", "--top", "3", "--write-keywords", "xmp")
    assert result.code == 0 and "keywords written for 1 photo(s)" in result.out, result.out + result.err
    assert (library / "coffee.jpg.xmp").stat().st_mtime_ns == before  # tagged the same way by rank: kept
    side = _exif(library / "cat.jpg.xmp")
    tags = pd.read_parquet(tmp_path / "run" / "tags-00000.parquet")
    assert sorted(_as_list(side["Subject"])) == sorted(tags[tags.image.str.endswith("cat.jpg")].tag)
    assert set(tags.image.map(lambda p: p.rsplit("/", 1)[-1])) == {"cat.jpg", "coffee.jpg"}
    changed = cli("batch", library, "--out", tmp_path / "run", "--top", "3", "--write-keywords", "embed")
    assert changed.code != 0 and "write_keywords" in changed.err
    forced = cli("batch", library, "--out", tmp_path / "again", "--top", "3", "--write-keywords", "xmp", "--force")
    assert "keywords written for 2 photo(s)" in forced.out
    for bad in (["--write-keywords", "picasa"], ["--force"]):
        refused = cli("batch", library, "--out", tmp_path / "bad", *bad)
        assert refused.code != 0 and "Traceback" not in refused.err and not (tmp_path / "bad").exists()


@needs_exiftool
def test_a_sidecar_that_is_not_xmp_and_a_tag_with_a_bar(cli, library, tmp_path):
    """A sidecar Exiv2 cannot read is one clear line naming it, and the other photos still get theirs; a '|' in
    a tag stays in dc:subject but does not split its hierarchical keyword into levels."""
    (library / "cat.jpg.xmp").write_text("not XMP at all", encoding="utf-8")
    result = cli("rank", library, "--top", "2", "--write-keywords", "xmp")
    assert result.code == 1 and "Traceback" not in result.err
    assert f"{library / 'cat.jpg.xmp'}: cannot write its keywords: Exiv2 says" in result.err
    assert (library / "cat.jpg.xmp").read_text(encoding="utf-8") == "not XMP at all"  # left as it was
    assert (library / "coffee.jpg.xmp").is_file()
    # a place the system will not write (a folder where the sidecar goes; a read-only folder fails alike): that
    # photo's one line, the others' keywords written
    (library / "cat.jpg.xmp").unlink()
    (library / "cat.jpg.xmp").mkdir()
    blocked = cli("rank", library, "--top", "2", "--write-keywords", "xmp", "--force")
    assert blocked.code == 1 and f"{library / 'cat.jpg.xmp'}: cannot write its keywords: is a directory" in blocked.err
    assert "keywords written for 1 photo(s)" in blocked.err and "Traceback" not in blocked.err
    vocab = tmp_path / "bars.txt"
    vocab.write_text("black|white\ncoffee\n", encoding="utf-8")
    assert cli("rank", library / "coffee.jpg", "--vocab", vocab, "--top", "2", "--write-keywords", "xmp",
               "--force").code == 0
    side = _exif(library / "coffee.jpg.xmp")
    assert "black|white" in _as_list(side["Subject"])
    assert "tagrank|black/white" in _as_list(side["HierarchicalSubject"])
