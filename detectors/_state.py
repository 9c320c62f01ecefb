"""Plumbing shared by detectors whose per-series state is one row of a 2-D array.

State lives in a float64 array of shape (capacity, width): one row per series id, so everything a
kernel needs for a point sits in one or two cache lines. The compiled kernel walks the batch in
arrival order, which makes repeated series in a batch exact without any splitting, and it is the only
loop: over points in machine code, never over series in Python.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from detectors.types import MetricBatch, Scores

__all__ = ["RowStateDetector", "empty_scores"]


def empty_scores(n: int) -> Scores:
    return Scores(
        score=np.zeros(n),
        expected=np.full(n, np.nan),
        lower=np.full(n, np.nan),
        upper=np.full(n, np.nan),
        ready=np.zeros(n, dtype=bool),
    )


class RowStateDetector(ABC):
    """Base for detectors with a (series × width) state array; subclasses supply `_run` and `_init_row`.

    `_init_row` is the state of a series never seen (NaN marks "no value yet" where useful).
    """

    name = "base"
    width = 0
    _STATE_VERSION = 1

    def __init__(self) -> None:
        self._state = np.empty((0, self.width))
        self._n_series = 0

    @property
    def n_series(self) -> int:
        return self._n_series

    def _init_row(self) -> np.ndarray:
        return np.zeros(self.width)

    @abstractmethod
    def _run(self, batch: MetricBatch, state: np.ndarray, out: Scores) -> None:
        """Score `batch` into `out`, updating `state` rows in place (the compiled kernel call)."""

    def update(self, batch: MetricBatch) -> Scores:
        n = len(batch)
        out = empty_scores(n)
        if n == 0:
            return out
        self._ensure(int(batch.series_id.max()) + 1)
        self._run(batch, self._state, out)
        return out

    def _ensure(self, size: int) -> None:
        if size <= self._n_series:
            return
        if size > len(self._state):
            grown = np.empty((max(size, 2 * len(self._state), 64), self.width))
            grown[: self._n_series] = self._state[: self._n_series]
            self._state = grown
        self._state[self._n_series : size] = self._init_row()
        self._n_series = size

    def state_bytes_per_series(self) -> int:
        return self.width * 8

    def state_dict(self) -> dict[str, Any]:
        return {"version": self._STATE_VERSION, "state": self._state[: self._n_series].copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("version") != self._STATE_VERSION:
            raise ValueError(f"unsupported {self.name} state version {state.get('version')!r}")
        rows = np.array(state["state"], dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != self.width:
            raise ValueError(f"{self.name} state must have shape (n, {self.width}), got {rows.shape}")
        self._state = rows.copy()
        self._n_series = len(rows)
