"""A measured table: rows beside the settings they were measured with, merged under a lock, written once here.

complexity.csv (with complexity.json), tighter.csv (with tighter.json) and rate_distortion.csv (its settings in
a `settings` column of every row, as it has always been stored) are each a `MeasuredTable`. Their rules:

* settings first: a table whose settings are missing, or are not the ones asked for, is refused with advice
  that keeps its rows (move it aside); nothing is added to it and nothing is rewritten;
* a merge replaces only the rows of the same key (epoch and eps), so the row count never falls;
* every write is atomic (temp file, then rename) and made under the run's lock, so concurrent writers merge.

`canonical(text) -> dict` reads stored settings in today's fields (old fields mapped), so that a comparison
is between like and like; the settings object only needs `to_json()`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from ..errors import GrokError, require
from ..files import write_text_atomic
from ..store import Run

INLINE = "settings"  # the column that holds a table's settings where it has no settings file


@dataclass(frozen=True)
class MeasuredTable:
    """One measured table of one run: `name` (a CSV in the run directory), its settings file (None: the
    settings are in the INLINE column of every row), its key columns and the lock its writers take."""

    run: Run
    name: str
    settings_file: str | None
    canonical: Callable[[str], dict]
    upgrade: Callable[[pd.DataFrame], pd.DataFrame] = lambda frame: frame
    key: tuple = ("epoch", "eps")
    lock: str = "complexity"

    @property
    def path(self):
        return self.run.path / self.name

    def stored_settings(self) -> dict | None:
        """The stored settings in today's fields, or None where none are stored."""
        if self.settings_file is not None:
            path = self.run.path / self.settings_file
            return self.canonical(path.read_text()) if path.exists() else None
        if not self.path.exists():
            return None
        column = pd.read_csv(self.path, usecols=lambda c: c == INLINE)
        return self.canonical(column[INLINE].iloc[0]) if INLINE in column and len(column) else None

    def check(self, settings) -> bool:
        """Whether the settings are already stored; refuses (before any write) a table without settings or
        with other ones, with advice that keeps its rows."""
        stored, where = self.stored_settings(), self.settings_file or f"the {INLINE} column"
        if stored is None:
            require(not self.path.exists(), "settings", f"{self.path} has rows but no settings ({where}): what "
                    f"they were measured with is unknown, so nothing is added to it; move {self.name} aside (to "
                    "keep it) and measure again")
            return False
        wanted = json.loads(settings.to_json())
        if stored != wanted:
            diff = {k: (stored.get(k), wanted.get(k)) for k in sorted(set(stored) | set(wanted))
                    if stored.get(k) != wanted.get(k)}
            aside = self.name if self.settings_file is None else f"both {self.name} and {self.settings_file}"
            raise GrokError("settings", f"{self.path} was measured with other settings (field: stored vs "
                            f"requested) {diff}; keep the stored settings, or to measure anew move {aside} out "
                            f"of {self.run.path} (nothing was changed)")
        return True

    def read(self) -> pd.DataFrame:
        """The stored rows (empty, with the key columns, where there are none), in today's column names."""
        if not self.path.exists():
            return pd.DataFrame({k: pd.Series(dtype=int if k in ("epoch", "step") else float) for k in self.key})
        return self.upgrade(pd.read_csv(self.path))

    def store(self, settings, rows: list[dict], lock_wait: float = math.inf) -> pd.DataFrame:
        """Merge `rows` into the table under the run's lock (`merge`)."""
        with self.run.lock(self.lock, lock_wait):
            return self.merge(settings, rows)

    def merge(self, settings, rows: list[dict]) -> pd.DataFrame:
        """For a caller that holds the lock: check the settings, then replace the stored rows of the same key
        with `rows` (rows of other keys stay: the count never falls) and write the table atomically."""
        known = self.check(settings)
        if not known and self.settings_file is not None:
            write_text_atomic(self.run.path / self.settings_file, settings.to_json())
        table, new = self.read(), pd.DataFrame(rows)
        if self.settings_file is None:
            new[INLINE] = settings.to_json().replace("\n", "")
        key = list(self.key)
        if len(table):
            replaced = pd.MultiIndex.from_frame(table[key]).isin(pd.MultiIndex.from_frame(new[key]))
            table = table[~replaced]
        frame = pd.concat([table, new], ignore_index=True) if len(table) else new
        frame = frame.sort_values(key, ignore_index=True)
        write_text_atomic(self.path, frame.to_csv(index=False))
        return frame
