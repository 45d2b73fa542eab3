"""Markdown for the benchmark reports: tables, percentages, and sections regenerated in place.

BENCHMARKS.md holds several benchmarks' sections; each script rewrites only its own, between
``<!-- begin NAME -->`` and ``<!-- end NAME -->``, so that one benchmark never erases another's figures.
"""

from __future__ import annotations


def table(header: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def pct(x: float | None) -> str:
    """A fraction as a percentage with one decimal; 'n/a' for a missing or NaN figure."""
    return "n/a" if x is None or x != x else f"{100 * x:.1f}"


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- begin {name} -->", f"<!-- end {name} -->"


def section(name: str, body: str) -> str:
    begin, end = _markers(name)
    return f"{begin}\n{body.strip()}\n{end}\n"


def sections(text: str) -> dict[str, str]:
    """The named sections of a document, each with its markers."""
    out = {}
    for line in text.splitlines():
        if line.startswith("<!-- begin ") and line.endswith(" -->"):
            name = line[len("<!-- begin "):-len(" -->")]
            begin, end = _markers(name)
            start, stop = text.find(begin), text.find(end)
            if stop > start:
                out[name] = text[start:stop + len(end)] + "\n"
    return out


def replace_section(text: str, name: str, body: str) -> str:
    """``text`` with section ``name`` replaced by ``body`` (appended when absent)."""
    old = sections(text).get(name)
    new = section(name, body)
    if old is None:
        return text.rstrip("\n") + "\n\n" + new
    return text.replace(old, new)
