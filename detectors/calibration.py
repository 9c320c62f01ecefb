"""Calibration: raw scores into tail probabilities of *this series'* own score history.

A detector's raw score says how unusual a point is under the detector's model; whether that is
unusual *for this series* depends on how often the series produces such scores. Following Numenta's
anomaly likelihood (Ahmad et al., Neurocomputing 2017), the raw score is averaged over a short
horizon (`short`) and compared with the long-run mean and variance of that average (`long`); the
Gaussian upper-tail probability of the comparison is the calibrated score, on the common scale. A
series that is always noisy stops alarming on its noise; a sustained change outscores one noisy
point of the same size.

`likelihood` is the compiled step the default ensemble applies to each member; `Calibrated` wraps
any detector so a rule can ask for it (`calibrate: true`).
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np

from detectors._numeric import upper_tail_surprise
from detectors.base import Detector
from detectors.types import MetricBatch, Scores

__all__ = ["Calibrated", "likelihood"]

_WIDTH = 4  # short average, long mean, long variance, count


@numba.njit(inline="always", cache=True)
def likelihood(row, at, raw, short, long):
    """Feed `raw` to the calibration kept at row[at:at+4]; the calibrated score on the common scale."""
    row[at] += short * (raw - row[at])
    n = row[at + 3]
    level = 0.0
    if n >= 2.0:
        level = upper_tail_surprise((row[at] - row[at + 1]) / max(math.sqrt(row[at + 2]), 1e-3))
    b = max(long, 1.0 / (n + 1.0))
    d = row[at] - row[at + 1]
    row[at + 1] += b * d
    row[at + 2] = (1.0 - b) * (row[at + 2] + b * d * d)
    row[at + 3] = n + 1.0
    return level


@numba.njit(cache=True, nogil=True)
def _calibrate_kernel(sid, raw, valid, state, short, long, out):
    for i in range(sid.shape[0]):
        if valid[i]:
            out[i] = likelihood(state[sid[i]], 0, raw[i], short, long)


class Calibrated:
    """`detector`'s scores, calibrated against each series' own history of them.

    Points the inner detector could not score (NaN values) leave the calibration alone.
    """

    _STATE_VERSION = 1

    def __init__(self, detector: Detector, short: float = 0.05, long: float = 0.001) -> None:
        if not (0 < short <= 1 and 0 < long <= 1):
            raise ValueError(f"short and long must be in (0, 1], got {short}, {long}")
        self.inner = detector
        self.name = f"{detector.name}+likelihood"
        self.short = short
        self.long = long
        self._state = np.zeros((0, _WIDTH))

    def update(self, batch: MetricBatch) -> Scores:
        scores = self.inner.update(batch)
        n = len(batch)
        if n == 0:
            return scores
        top = int(batch.series_id.max()) + 1
        if top > len(self._state):
            grown = np.zeros((max(top, 2 * len(self._state), 64), _WIDTH))
            grown[: len(self._state)] = self._state
            self._state = grown
        calibrated = np.zeros(n)
        _calibrate_kernel(batch.series_id, scores.score, np.isfinite(batch.value), self._state, self.short, self.long, calibrated)
        components = {**(scores.components or {}), self.inner.name: scores.score}
        return Scores(calibrated, scores.expected, scores.lower, scores.upper, scores.ready, components)

    def state_bytes_per_series(self) -> int:
        return getattr(self.inner, "state_bytes_per_series", lambda: 0)() + _WIDTH * 8

    def state_dict(self) -> dict[str, Any]:
        return {"version": self._STATE_VERSION, "inner": self.inner.state_dict(), "state": self._state.copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("version") != self._STATE_VERSION:
            raise ValueError(f"unsupported calibration state version {state.get('version')!r}")
        self.inner.load_state_dict(state["inner"])
        self._state = np.array(state["state"], dtype=np.float64)
