"""Writing ranked tags: a terminal table, or JSON / JSON Lines / CSV / Parquet for pipelines.

Records are ``{"image", "tags": [{"rank", "tag", "score", "confidence"[, "votes"]}]}``, or ``{"image", "error"}`` for
an image that could not be read. JSON formats keep error records (nothing is silently lost); CSV and
Parquet are one row per (image, tag) and leave failed images to the error report on stderr.
Files are written atomically: a failed run never leaves half an output file.

File names that are not valid UTF-8 (Python holds their odd bytes as surrogate escapes) are never lost:
JSON writes them as \\udcXX escapes, which ``json.loads`` and ``os.fsencode`` turn back into the exact
bytes; the table, CSV and Parquet (UTF-8 text only) write the odd bytes as ``\\xNN`` and say so once.
"""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path
from typing import Iterable, TextIO

from tagrank._log import log
from tagrank.atomic import atomic_file
from tagrank.errors import TagrankError

FORMATS = ("table", "json", "jsonl", "csv", "parquet")


def text_name(name: str) -> str:
    """``name`` as UTF-8 text: undecodable bytes of a file name (surrogate escapes) become ``\\xNN``."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        _warn_once()
        return os.fsencode(name).decode("utf-8", "backslashreplace")


_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7f]} | {c: f"\\u{c:04x}" for c in range(0x80, 0xa0)}


def printable(text: str) -> str:
    """``text`` safe to print to a terminal: control characters (an escape sequence in a file name or tag could
    clear the screen or retitle the window) written as \\xNN / \\uNNNN."""
    return text.translate(_CONTROL)


_warned = False


def _warn_once() -> None:
    global _warned
    if not _warned:
        log.warning("a file name is not valid UTF-8: its odd bytes are written as \\xNN (use --format json "
                    "or jsonl to keep them exactly)")
        _warned = True


def _json(value, indent: int | None = None) -> str:
    """JSON text; a value holding a non-UTF-8 file name is written with ASCII escapes (lossless)."""
    text = json.dumps(value, ensure_ascii=False, indent=indent)
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return json.dumps(value, indent=indent)


def _rows(records: Iterable[dict]) -> Iterable[dict]:
    for record in records:
        for tag in record.get("tags", []):
            yield {"image": text_name(record["image"]), **tag}


def _columns(rows: list[dict]) -> list[str]:
    """One row per (image, tag): the columns every format carries, plus ``votes`` with --explain."""
    return ["image", "rank", "tag", "score", "confidence"] + (["votes"] if any("votes" in r for r in rows) else [])


def write_table(records: Iterable[dict], stream: TextIO, score_name: str = "score") -> None:
    """The human-readable table (file names and tags with their control characters escaped)."""
    for record in records:
        stream.write(f"{printable(text_name(record['image']))}\n")
        if "error" in record:
            stream.write(f"    (skipped: {printable(record['error'])})\n")
            continue
        tags = [printable(t["tag"]) for t in record["tags"]]
        width = max([len(t) for t in tags] + [3])
        for tag, name in zip(record["tags"], tags):
            votes = f"  {tag['votes']:>4} votes" if "votes" in tag else ""
            sure = f"  confidence {tag['confidence']:.2f}" if tag.get("confidence") is not None else ""
            stream.write(f"  {tag['rank']:>3}  {name:<{width}}  {score_name} {tag['score']:.4f}{sure}{votes}\n")
        if not record["tags"]:
            stream.write("    (no tag passes the threshold)\n")
        stream.flush()


def write_stream(records: Iterable[dict], fmt: str, stream: TextIO, score_name: str = "score") -> None:
    """Formats that can be written record by record as images are tagged."""
    if fmt == "table":
        write_table(records, stream, score_name)
    elif fmt == "jsonl":
        for record in records:
            stream.write(_json(record) + "\n")
            stream.flush()
    elif fmt == "json":
        stream.write(_json(list(records), indent=2) + "\n")
    elif fmt == "csv":
        import csv

        rows = list(_rows(records))
        writer = csv.DictWriter(stream, fieldnames=_columns(rows), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    else:
        raise TagrankError(f"format {fmt!r} cannot be written to a text stream")


def write_results(records: Iterable[dict], fmt: str, out: str | Path | None, score_name: str = "score") -> None:
    """Write ``records`` in ``fmt`` to ``out`` (atomically) or to stdout (streamed, for ``out=None``)."""
    if fmt not in FORMATS:
        raise TagrankError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
    if fmt == "parquet":
        if out is None:
            raise TagrankError("--format parquet needs --out FILE")
        import pandas as pd

        rows = list(_rows(records))
        frame = pd.DataFrame(rows, columns=_columns(rows))
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        with atomic_file(out) as f:
            f.write(buffer.getvalue())
        return
    if out is None:
        write_stream(records, fmt, sys.stdout, score_name)
        return
    with atomic_file(out, "w") as f:
        write_stream(records, fmt, f, score_name)
