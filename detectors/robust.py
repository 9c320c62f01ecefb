"""Robust median/MAD score over a short trailing window.

Use it where single outliers are common and should not drag the baseline (error counts, queue depth,
request latency with occasional slow requests): the median and the median absolute deviation of the
last `window` values ignore up to half the window being wild, which the mean and variance of the
EWMA detector do not. The score is erf(|x − median| / (1.4826·MAD·√2)), with MAD floored so a flat
window does not make every small change infinite.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from detectors._numeric import DIRECTIONS, directional, gaussian_confidence
from detectors._state import RowStateDetector
from detectors.types import MetricBatch, Scores

__all__ = ["RobustMad"]

_COUNT, _POS = 0, 1  # then `window` slots of the ring buffer
_HEAD = 2
_MAD_TO_STD = 1.4826  # MAD of a Gaussian times this is its standard deviation


@numba.njit(cache=True, nogil=True)
def _robust_kernel(sid, x, state, window, warmup, band, min_std, rel_min_std, direction, score, expected, lower, upper, ready):
    scratch = np.empty(window)
    for i in range(sid.shape[0]):
        row = state[sid[i]]
        v = x[i]
        if not math.isfinite(v):
            continue
        count = int(row[_COUNT])
        filled = min(count, window)
        if filled > 0:
            for k in range(filled):
                scratch[k] = row[_HEAD + k]
            part = scratch[:filled]
            part.sort()
            median = _sorted_median(part, filled)
            for k in range(filled):
                part[k] = abs(part[k] - median)
            part.sort()
            std = _MAD_TO_STD * _sorted_median(part, filled)
            floor = max(min_std, rel_min_std * abs(median))
            if std < floor:
                std = floor
            score[i] = gaussian_confidence(directional(v - median, direction) / std)
            expected[i] = median
            lower[i] = median - band * std
            upper[i] = median + band * std
            ready[i] = count >= warmup
        pos = int(row[_POS])
        row[_HEAD + pos] = v
        row[_POS] = (pos + 1) % window
        row[_COUNT] = count + 1


@numba.njit(inline="always", cache=True)
def _sorted_median(values, n):
    mid = n // 2
    return values[mid] if n % 2 else 0.5 * (values[mid - 1] + values[mid])


class RobustMad(RowStateDetector):
    """Median/MAD z-score over the last `window` values of each series.

    window: trailing values kept per series (state is window + 2 floats per series).
    warmup: points before scores may raise anything (at least a few windows' worth is wise).
    band_sigmas, min_std, rel_min_std, direction: as for `EwmaZScore`.
    """

    name = "robust_mad"

    def __init__(
        self,
        window: int = 32,
        warmup: int = 32,
        band_sigmas: float = 3.0,
        min_std: float = 1e-9,
        rel_min_std: float = 1e-3,
        direction: str = "both",
    ) -> None:
        if not 3 <= window <= 256:
            raise ValueError(f"window must be between 3 and 256, got {window}")
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {sorted(DIRECTIONS)}, got {direction!r}")
        self.window = window
        self.width = _HEAD + window
        super().__init__()
        self.warmup = warmup
        self.band_sigmas = band_sigmas
        self.min_std = min_std
        self.rel_min_std = rel_min_std
        self.direction = direction

    def _run(self, batch: MetricBatch, state: np.ndarray, out: Scores) -> None:
        _robust_kernel(
            batch.series_id, batch.value, state, self.window, float(self.warmup), self.band_sigmas,
            self.min_std, self.rel_min_std, DIRECTIONS[self.direction],
            out.score, out.expected, out.lower, out.upper, out.ready,
        )
