"""EWMA mean/variance z-score: the cheapest useful detector.

Use it for series that hover around a slowly moving level (latency, error ratio, queue depth) when
seasonality is weak. Each series keeps an exponentially weighted mean and variance; a point is
scored by how many standard deviations it lies from the mean *before* the point is absorbed, so the
score of a point never depends on later points. Score = erf(|z|/√2), one minus the two-sided Gaussian
tail probability: 0.9999 means "a deviation this large happens once in 10,000 normal points".
"""

from __future__ import annotations

import math

import numba
import numpy as np

from detectors._numeric import DIRECTIONS, directional, gaussian_confidence
from detectors._state import RowStateDetector
from detectors.types import MetricBatch, Scores

__all__ = ["EwmaZScore"]

_MEAN, _VAR, _COUNT = 0, 1, 2


@numba.njit(cache=True, nogil=True)
def _ewma_kernel(sid, x, state, alpha, warmup, band, min_std, rel_min_std, direction, score, expected, lower, upper, ready):
    for i in range(sid.shape[0]):
        row = state[sid[i]]
        v = x[i]
        count = row[_COUNT]
        if not math.isfinite(v):
            continue  # NaN or inf: decide nothing, learn nothing
        if count > 0.0:
            mean = row[_MEAN]
            std = math.sqrt(row[_VAR])
            floor = max(min_std, rel_min_std * abs(mean))
            if std < floor:
                std = floor
            delta = v - mean
            score[i] = gaussian_confidence(directional(delta, direction) / std)
            expected[i] = mean
            lower[i] = mean - band * std
            upper[i] = mean + band * std
            ready[i] = count >= warmup
            a = max(alpha, 1.0 / (count + 1.0))  # running mean/variance until 1/alpha points are seen
            row[_MEAN] = mean + a * delta
            row[_VAR] = (1.0 - a) * (row[_VAR] + a * delta * delta)
        else:
            row[_MEAN] = v
            row[_VAR] = 0.0
        row[_COUNT] = count + 1.0


class EwmaZScore(RowStateDetector):
    """Exponentially weighted z-score over many series.

    alpha: weight of the newest point in the mean and variance (0.05 ≈ a 14-point half-life).
    warmup: points a series needs before its scores may raise anything.
    band_sigmas: half-width of the expected band reported with each score, in standard deviations.
    min_std / rel_min_std: floor of the standard deviation, absolute and relative to |mean|, so a
    constant series does not turn its first wobble into an infinite z-score.
    direction: "both", "up" (only spikes score) or "down" (only dips score).
    """

    name = "ewma_zscore"
    width = 3

    def __init__(
        self,
        alpha: float = 0.05,
        warmup: int = 30,
        band_sigmas: float = 3.0,
        min_std: float = 1e-9,
        rel_min_std: float = 1e-3,
        direction: str = "both",
    ) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        if warmup < 1:
            raise ValueError(f"warmup must be at least 1, got {warmup}")
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {sorted(DIRECTIONS)}, got {direction!r}")
        super().__init__()
        self.alpha = alpha
        self.warmup = warmup
        self.band_sigmas = band_sigmas
        self.min_std = min_std
        self.rel_min_std = rel_min_std
        self.direction = direction

    def _run(self, batch: MetricBatch, state: np.ndarray, out: Scores) -> None:
        _ewma_kernel(
            batch.series_id, batch.value, state, self.alpha, float(self.warmup), self.band_sigmas,
            self.min_std, self.rel_min_std, DIRECTIONS[self.direction],
            out.score, out.expected, out.lower, out.upper, out.ready,
        )
