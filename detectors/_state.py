"""Plumbing shared by detectors whose per-series state is one row of a 2-D array.

State lives in a float64 array of shape (capacity, width): one row per series id, so everything a
kernel needs for a point sits in one or two cache lines. The compiled kernel walks the batch in
arrival order, which makes repeated series in a batch exact without any splitting, and it is the only
loop: over points in machine code, never over series in Python.

Every kernel has the same signature: `(series_id, ts, value, state, *own parameters, warmup, band_sigmas,
min_std, rel_min_std, direction, score, expected, lower, upper, ready)`, and the outputs are filled
in place for each point it can score.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import numba
import numpy as np

from detectors._numeric import DIRECTIONS
from detectors.types import MetricBatch, Scores

__all__ = ["RowStateDetector", "check_unit_interval", "row_order"]


@numba.njit(cache=True, nogil=True)
def row_order(series_id: np.ndarray, n_series: int) -> np.ndarray:
    """Positions of the batch sorted by series id, stable (a counting sort: O(points + series)).

    Walking the batch in this order reads state rows in address order instead of at random, which
    matters once rows are wide; the order of each series' own points is kept.
    """
    counts = np.zeros(n_series + 1, dtype=np.int64)
    for i in range(series_id.shape[0]):
        counts[series_id[i] + 1] += 1
    for s in range(n_series):
        counts[s + 1] += counts[s]
    order = np.empty(series_id.shape[0], dtype=np.int64)
    for i in range(series_id.shape[0]):
        s = series_id[i]
        order[counts[s]] = i
        counts[s] += 1
    return order


def check_unit_interval(name: str, value: float) -> float:
    if not 0.0 < value <= 1.0:
        raise ValueError(f"{name} must be in (0, 1], got {value}")
    return value


class RowStateDetector(ABC):
    """Base for detectors with a (series × width) state array and a compiled kernel.

    warmup: points a series needs before its scores may raise anything.
    band_sigmas: half-width of the expected band reported with each score, in standard deviations.
    min_std / rel_min_std: floor of the standard deviation, absolute and relative to |expected|, so a
    constant series does not turn its first wobble into an infinite score.
    direction: "both", "up" (only spikes score) or "down" (only dips score).
    """

    name = "base"
    width = 0
    _STATE_VERSION = 1

    def __init__(
        self,
        *,
        warmup: int,
        band_sigmas: float = 3.0,
        min_std: float = 1e-9,
        rel_min_std: float = 1e-3,
        direction: str = "both",
    ) -> None:
        if warmup < 1:
            raise ValueError(f"warmup must be at least 1, got {warmup}")
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {sorted(DIRECTIONS)}, got {direction!r}")
        if band_sigmas <= 0 or min_std < 0 or rel_min_std < 0:
            raise ValueError("band_sigmas must be positive, min_std and rel_min_std not negative")
        self.warmup = warmup
        self.band_sigmas = band_sigmas
        self.min_std = min_std
        self.rel_min_std = rel_min_std
        self.direction = direction
        self._state = np.empty((0, self.width))
        self._n_series = 0

    @property
    @abstractmethod
    def _kernel(self) -> Callable[..., None]:
        """The compiled function that scores a batch and updates state rows in place."""

    @abstractmethod
    def _kernel_params(self) -> tuple:
        """This detector's own parameters, in the kernel's order."""

    @property
    def n_series(self) -> int:
        return self._n_series

    def _init_row(self) -> np.ndarray:
        """State of a series never seen."""
        return np.zeros(self.width)

    def update(self, batch: MetricBatch) -> Scores:
        n = len(batch)
        out = Scores.empty(n)
        if n == 0:
            return out
        self._ensure(int(batch.series_id.max()) + 1)
        self._kernel(
            batch.series_id, batch.ts, batch.value, self._state, *self._kernel_params(),
            float(self.warmup), self.band_sigmas, self.min_std, self.rel_min_std, DIRECTIONS[self.direction],
            out.score, out.expected, out.lower, out.upper, out.ready,
        )  # fmt: skip
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
