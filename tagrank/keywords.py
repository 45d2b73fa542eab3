"""Tags written as keywords where photo managers read them: XMP in a sidecar file or inside the photo.

digiKam, darktable, Lightroom, PhotoPrism and Apple/Google Photos read a photo's keywords from XMP
``dc:subject`` (and hierarchical ones from ``lr:hierarchicalSubject``), in a sidecar beside the photo or
embedded in it, and from IPTC ``Keywords``. :func:`write_keywords` adds tagrank's tags there:

* ``xmp``: the sidecar ``NAME.EXT.xmp`` (digiKam's and darktable's convention); ``lightroom``: ``NAME.xmp``;
  ``embed``: the photo's own XMP and IPTC keywords, written into a copy that replaces the photo in one
  rename, every other metadata field and the image data left as they were.
* A person's own keywords are never removed or changed: tagrank records which keywords it added (in its
  own XMP namespace, with the model, the options, the date and each tag's confidence) and a later run
  replaces only those. A photo already tagged with the same model and options is skipped (``force``
  redoes it), so a run over a grown library only tags the new photos.
* Hierarchical keywords sit under one root, ``tagrank|animal|cat|tabby``, along WordNet's names above a tag
  where WordNet knows it (:mod:`tagrank.labels.wordnet`), ``tagrank|TAG`` otherwise.

The metadata library is Exiv2 (``pip install 'tagrank[keywords]'``: its Python binding ships the library).
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
from functools import lru_cache
from pathlib import Path

from tagrank.atomic import atomic_path
from tagrank.errors import TagrankError, os_reason

MODES = ("xmp", "lightroom", "embed")
NAMESPACE = "http://ns.tagrank.org/keywords/1.0/"
PREFIX = "tagrank"
ROOT = "tagrank"  # the hierarchical keywords' root


def sidecar_path(photo: str | os.PathLike, mode: str) -> Path:
    """Where ``mode`` writes a photo's keywords: its sidecar, or the photo itself for ``embed``."""
    photo = Path(photo)
    if mode == "xmp":
        return photo.with_name(photo.name + ".xmp")
    if mode == "lightroom":
        return photo.with_suffix(".xmp")
    if mode == "embed":
        return photo
    raise TagrankError(f"--write-keywords must be one of {', '.join(MODES)}, got {mode!r}")


def exiv2_binding():
    """Exiv2's Python binding with tagrank's XMP namespace registered; one clear line when it is missing."""
    try:
        import exiv2
    except ImportError:
        raise TagrankError("photo keywords need Exiv2's Python binding: pip install 'tagrank[keywords]'") from None
    if not getattr(exiv2_binding, "registered", False):
        exiv2.XmpProperties.registerNs(NAMESPACE, PREFIX)
        exiv2.LogMsg.setLevel(exiv2.LogMsg.Level.mute)
        exiv2_binding.registered = True
    return exiv2


def stamp(model: str, options: dict) -> str:
    """What a photo was tagged with: the model and the options that change its keywords."""
    return json.dumps({"model": model, **options}, sort_keys=True, ensure_ascii=False)


def run_stamp(model, method, vocab, top: int, threshold: float | None) -> str:
    """:func:`stamp` of a `rank` or `batch` run (the same for both, so each skips what the other wrote)."""
    return stamp(str(model or method or "embedded default"), {"vocab": str(vocab or "default"), "top": top,
                                                              "threshold": threshold})


def check_options(mode: str | None, force: bool) -> None:
    """Refuse a keyword mode tagrank does not know, a missing Exiv2 binding, or --force without a mode."""
    if mode is not None:
        sidecar_path("photo", mode)  # the mode, checked
        exiv2_binding()  # installed?
    elif force:
        raise TagrankError("--force goes with --write-keywords")


def write_keywords(photo: str | os.PathLike, tags: list[dict], mode: str, made_with: str, force: bool = False) -> bool:
    """Write ``tags`` ({tag, confidence} dicts) as ``photo``'s keywords; ``made_with``: :func:`stamp`. Returns
    False when the photo already holds keywords made the same way (and ``force`` is not set)."""
    exiv2 = exiv2_binding()
    target = sidecar_path(photo, mode)
    if not force and already_tagged(photo, mode, made_with):
        return False
    if mode == "embed" and not target.is_file():
        raise TagrankError(f"{photo}: file not found")
    try:
        _write(exiv2, target, tags, made_with, mode)
    except OSError as exc:  # a read-only folder, a folder where the sidecar should be: this photo only
        raise TagrankError(f"{target}: cannot write its keywords: {os_reason(exc)}") from None
    return True


def _write(exiv2, target: Path, tags: list[dict], made_with: str, mode: str) -> None:
    """Write ``tags`` into ``target`` (a sidecar or the photo) atomically, keeping every other keyword and field."""
    with atomic_path(target) as tmp:
        try:
            if target.exists():
                shutil.copyfile(target, tmp)
                shutil.copymode(target, tmp)
                image = exiv2.ImageFactory.open(str(tmp))
            else:
                tmp.unlink()
                image = exiv2.ImageFactory.create(exiv2.ImageType.xmp, str(tmp))
            image.readMetadata()
            xmp = image.xmpData()
            ours_before = set(_texts(xmp, f"Xmp.{PREFIX}.Keywords"))
            names = [t["tag"] for t in tags]
            theirs = [k for k in _texts(xmp, "Xmp.dc.subject") if k not in ours_before]
            ours = [n for n in names if n not in theirs]
            hierarchy = [h for h in _texts(xmp, "Xmp.lr.hierarchicalSubject") if not h.startswith(ROOT + "|")]
            _set_array(exiv2, xmp, "Xmp.dc.subject", theirs + ours, exiv2.TypeId.xmpBag)
            _set_array(exiv2, xmp, "Xmp.lr.hierarchicalSubject", hierarchy + [hierarchical(n) for n in names],
                       exiv2.TypeId.xmpBag)
            _set_array(exiv2, xmp, f"Xmp.{PREFIX}.Keywords", ours, exiv2.TypeId.xmpBag)
            _set_array(exiv2, xmp, f"Xmp.{PREFIX}.Confidences",
                       [f"{t['tag']}={t['confidence']:.4f}" if t.get("confidence") is not None else t["tag"] for t in tags],
                       exiv2.TypeId.xmpSeq)
            _set_text(exiv2, xmp, f"Xmp.{PREFIX}.MadeWith", made_with)
            _set_text(exiv2, xmp, f"Xmp.{PREFIX}.Date", datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
            if mode == "embed":  # IPTC keywords too: some managers read only those
                iptc = image.iptcData()
                keep = [k for k in _iptc_keywords(iptc) if k not in ours_before]
                _remove(exiv2, iptc, "Iptc.Application2.Keywords")
                for keyword in keep + [n for n in ours if n not in keep]:
                    datum = exiv2.Iptcdatum(exiv2.IptcKey("Iptc.Application2.Keywords"))
                    datum.setValue(keyword)
                    iptc.add(datum)
            image.writeMetadata()
        except exiv2.Exiv2Error as exc:  # a format Exiv2 cannot write, damaged metadata, a sidecar that is not XMP
            what = exc.args[1] if len(exc.args) > 1 else exc
            raise TagrankError(f"{target}: cannot write its keywords: Exiv2 says '{what}' (a sidecar that is not XMP, "
                               "or damaged metadata: repair or move it)") from None


def already_tagged(photo: str | os.PathLike, mode: str, made_with: str) -> bool:
    """Whether ``photo``'s keywords (where ``mode`` keeps them) were written the way :func:`stamp` describes."""
    exiv2 = exiv2_binding()
    target = sidecar_path(photo, mode)
    if not target.is_file():
        return False
    try:
        image = exiv2.ImageFactory.open(str(target))
        image.readMetadata()
    except exiv2.Exiv2Error:
        return False  # unreadable metadata: the write will say so
    return _texts(image.xmpData(), f"Xmp.{PREFIX}.MadeWith") == [made_with]


def read_keywords(path: str | os.PathLike) -> dict[str, list[str]]:
    """A photo's or sidecar's keywords as a photo manager sees them: subject, hierarchical, IPTC, and those
    tagrank added."""
    exiv2 = exiv2_binding()
    image = exiv2.ImageFactory.open(str(path))
    image.readMetadata()
    xmp = image.xmpData()
    return {"subject": _texts(xmp, "Xmp.dc.subject"), "hierarchical": _texts(xmp, "Xmp.lr.hierarchicalSubject"),
            "iptc": _iptc_keywords(image.iptcData()),
            "tagrank": _texts(xmp, f"Xmp.{PREFIX}.Keywords")}


def hierarchical(tag: str) -> str:
    """``tagrank|animal|...|cat|tabby`` along WordNet's generic names above ``tag``, or ``tagrank|TAG``. A '|'
    inside a tag (a hashtag list's 'black|white') is written as '/' here: in lr:hierarchicalSubject it would
    split the tag into levels (dc:subject keeps the tag as it is)."""
    return "|".join([ROOT, *_wordnet_path(tag.lower()), tag.replace("|", "/")])  # no WordNet path: tagrank|TAG


@lru_cache(maxsize=4096)
def _wordnet_path(tag: str) -> tuple[str, ...]:
    """The generic names (first lemmas, most general first) of the synsets above ``tag``'s first sense."""
    from tagrank.labels.wordnet import hierarchy_path

    return tuple(hierarchy_path(tag))


def _texts(data, key: str) -> list[str]:
    """Every value of ``key`` (an array's items, or one text)."""
    import exiv2

    arrays = (exiv2.TypeId.xmpBag, exiv2.TypeId.xmpSeq, exiv2.TypeId.xmpAlt)
    out = []
    for datum in data:
        if datum.key() == key:
            value = datum.value()  # a text's count() is its length: only arrays are read item by item
            out += [value.toString(i) for i in range(value.count())] if value.typeId() in arrays else [str(value)]
    return out


def _iptc_keywords(iptc) -> list[str]:
    return [str(datum.value()) for datum in iptc if datum.key() == "Iptc.Application2.Keywords"]


def _set_array(exiv2, xmp, key: str, items: list[str], kind) -> None:
    _remove(exiv2, xmp, key)
    if items:
        value = exiv2.XmpArrayValue(kind)
        for item in items:
            value.read(item)
        xmp.add(exiv2.XmpKey(key), value)


def _set_text(exiv2, xmp, key: str, text: str) -> None:
    _remove(exiv2, xmp, key)
    xmp.add(exiv2.XmpKey(key), exiv2.XmpTextValue(text))


def _remove(exiv2, data, key: str) -> None:
    """Erase every datum of ``key`` (XMP or IPTC)."""
    name = exiv2.XmpKey(key) if key.startswith("Xmp.") else exiv2.IptcKey(key)
    while (found := data.findKey(name)) != data.end():
        data.erase(found)
