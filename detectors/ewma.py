"""EWMA mean/variance z-score: the cheapest useful detector.

Use it for series that hover around a slowly moving level (latency, error ratio, queue depth) when
seasonality is weak. Each series keeps an exponentially weighted mean and variance; a point is
scored by how many standard deviations it lies from the mean *before* the point is absorbed, so the
score of a point never depends on later points. The score is the two-sided Gaussian tail probability
of z on the common scale, −log10(p)/10: 0.4 means "a deviation this large happens once in 10,000
normal points".
"""

from __future__ import annotations

import math

import numba

from detectors._numeric import direction_bounds, directional, floored, gaussian_surprise, write_band
from detectors._state import RowStateDetector, check_unit_interval

__all__ = ["EwmaZScore"]

_MEAN, _VAR, _COUNT = 0, 1, 2


@numba.njit(cache=True, nogil=True)
def _ewma_kernel(sid, ts, x, state, alpha, warmup, band, min_std, rel_min_std, direction, score, expected, lower, upper, ready):
    low, high = direction_bounds(direction)
    for i in range(sid.shape[0]):
        row = state[sid[i]]
        v = x[i]
        count = row[_COUNT]
        if not math.isfinite(v):
            continue  # NaN or inf: decide nothing, learn nothing
        if count > 0.0:
            mean = row[_MEAN]
            std = floored(math.sqrt(row[_VAR]), mean, min_std, rel_min_std)
            delta = v - mean
            score[i] = gaussian_surprise(directional(delta, low, high) / std)
            write_band(i, mean, std, band, expected, lower, upper)
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
    The other parameters are those of every row-state detector (see `RowStateDetector`).
    """

    name = "ewma_zscore"
    width = 3
    _kernel = staticmethod(_ewma_kernel)

    def __init__(self, alpha: float = 0.05, warmup: int = 30, **common) -> None:
        super().__init__(warmup=warmup, **common)
        self.alpha = check_unit_interval("alpha", alpha)

    def _kernel_params(self) -> tuple:
        return (self.alpha,)
