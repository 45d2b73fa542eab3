"""The tuning scripts' trial log: one JSON line per validation trial, rerun only when asked or changed.

A trial is a tuple whose first item is its name and whose last is the settings it changes; the log
keeps the trials in the scripts' order (entries of trials no longer listed first, so none is lost).
"""

from __future__ import annotations

import json
from pathlib import Path


class TrialLog:
    def __init__(self, path: Path, order: list[str]):
        self.path = Path(path)
        self.order = order
        self.done = self._read()

    def _read(self) -> dict[str, dict]:
        if not self.path.is_file():
            return {}
        entries = (json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines())
        return {entry["name"]: entry for entry in entries}

    def wanted(self, trials: list[tuple], only: list[str] | None = None) -> list[tuple]:
        """The trials named in ``only``; without it, those not yet run or whose settings changed."""
        if only:
            return [t for t in trials if t[0] in only]
        return [t for t in trials if t[0] not in self.done or self.done[t[0]]["settings"] != t[-1]]

    def record(self, entry: dict) -> None:
        """Add ``entry``, keeping what another run of the script recorded meanwhile."""
        self.done = {**self._read(), entry["name"]: entry}
        names = [n for n in self.done if n not in self.order] + [n for n in self.order if n in self.done]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("".join(json.dumps(self.done[n]) + "\n" for n in names), encoding="utf-8")
