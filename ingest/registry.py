"""Series registry: interns a series' identity (name + sorted labels) to a dense int id.

Dense ids let detector state live in numpy arrays indexed by id. The registry is in memory; the
service loads known series from the store at start and persists new ones that `drain_new` hands it,
so ids stay stable across restarts.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping

import numpy as np

__all__ = ["SeriesKey", "SeriesRegistry", "SeriesLimitReached", "grow_id_map", "series_key"]

SeriesKey = tuple[str, tuple[tuple[str, str], ...]]


def series_key(name: str, labels: Mapping[str, str]) -> SeriesKey:
    """The canonical identity of a series: its name and its labels sorted by key."""
    return name, tuple(sorted(labels.items()))


def grow_id_map(ids: np.ndarray, size: int, fill: int) -> np.ndarray:
    """An array indexed by series id (a rule, slot or row per series) long enough for ids below `size`.

    Returned as it is when long enough; else a copy at least twice as long (amortized growth, at least
    64), its new entries `fill` (the "not decided yet" mark of the caller).
    """
    if size <= len(ids):
        return ids
    grown = np.full(max(size, 2 * len(ids), 64), fill, dtype=ids.dtype)
    grown[: len(ids)] = ids
    return grown


class SeriesLimitReached(Exception):
    """Interning one more series would pass the configured cardinality limit."""


class SeriesRegistry:
    """Thread-safe interning of series keys to ids 0, 1, 2, … in order of first sight."""

    def __init__(self, max_series: int = 1_000_000) -> None:
        self.max_series = max_series
        self._ids: dict[SeriesKey, int] = {}
        self._keys: list[SeriesKey] = []
        self._new: list[int] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._keys)

    def get(self, key: SeriesKey) -> int | None:
        return self._ids.get(key)

    def intern(self, key: SeriesKey) -> int:
        """The id of `key`, assigning the next one if it is new."""
        found = self._ids.get(key)
        if found is not None:
            return found
        with self._lock:
            found = self._ids.get(key)
            if found is not None:
                return found
            if len(self._keys) >= self.max_series:
                raise SeriesLimitReached(f"series limit of {self.max_series} reached")
            sid = len(self._keys)
            self._keys.append(key)
            self._ids[key] = sid
            self._new.append(sid)
            return sid

    def key(self, sid: int) -> SeriesKey:
        return self._keys[sid]

    def labels(self, sid: int) -> dict[str, str]:
        return dict(self._keys[sid][1])

    def name(self, sid: int) -> str:
        return self._keys[sid][0]

    def load(self, rows: Iterable[tuple[int, SeriesKey]]) -> None:
        """Restore known series (from the store) with their ids; ids must be dense from 0."""
        with self._lock:
            for sid, key in sorted(rows):
                if sid != len(self._keys):
                    raise ValueError(f"series ids are not dense: expected {len(self._keys)}, got {sid}")
                self._keys.append(key)
                self._ids[key] = sid

    def drain_new(self) -> list[tuple[int, SeriesKey]]:
        """Series interned since the last call, for persisting."""
        with self._lock:
            new, self._new = self._new, []
        return [(sid, self._keys[sid]) for sid in new]

    def requeue_new(self, rows: list[tuple[int, SeriesKey]]) -> None:
        """Hand series back to `drain_new` after persisting them failed."""
        with self._lock:
            self._new[:0] = [sid for sid, _ in rows]
