"""Robust median/MAD score over a short trailing window.

Use it where single outliers are common and should not drag the baseline (error counts, queue depth,
request latency with occasional slow requests): the median and the median absolute deviation of the
last `window` values ignore up to half the window being wild, which the mean and variance of the
EWMA detector do not. The score is the Gaussian surprise of |x − median| / (1.4826·MAD), with MAD
floored so a flat window does not make every small change infinite.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from detectors._numeric import direction_bounds, directional, floored, gaussian_surprise, write_band
from detectors._state import RowStateDetector

__all__ = ["RobustMad"]

_COUNT, _POS = 0, 1  # then `window` slots of the ring buffer
_HEAD = 2
_MAD_TO_STD = 1.4826  # MAD of a Gaussian times this is its standard deviation


@numba.njit(cache=True, nogil=True)
def _robust_kernel(sid, ts, x, state, window, warmup, band, min_std, rel_min_std, direction, score, expected, lower, upper, ready):
    scratch = np.empty(window)
    low, high = direction_bounds(direction)
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
            median = _median(scratch, filled)
            for k in range(filled):
                scratch[k] = abs(scratch[k] - median)
            std = floored(_MAD_TO_STD * _median(scratch, filled), median, min_std, rel_min_std)
            score[i] = gaussian_surprise(directional(v - median, low, high) / std)
            write_band(i, median, std, band, expected, lower, upper)
            ready[i] = count >= warmup
        pos = int(row[_POS])
        row[_HEAD + pos] = v
        row[_POS] = (pos + 1) % window
        row[_COUNT] = count + 1


@numba.njit(inline="always", cache=True)
def _select(values, n, k):
    """The k-th smallest of values[:n] (Hoare's quickselect, in place): O(n) instead of a sort."""
    left, right = 0, n - 1
    while left < right:
        pivot = values[(left + right) // 2]
        i, j = left, right
        while i <= j:
            while values[i] < pivot:
                i += 1
            while values[j] > pivot:
                j -= 1
            if i <= j:
                values[i], values[j] = values[j], values[i]
                i += 1
                j -= 1
        if k <= j:
            right = j
        elif k >= i:
            left = i
        else:
            break
    return values[k]


@numba.njit(inline="always", cache=True)
def _median(values, n):
    """Median of values[:n]; reorders them."""
    mid = n // 2
    upper = _select(values, n, mid)
    if n % 2:
        return upper
    below = values[0]
    for k in range(1, mid):  # after selection, values[:mid] are all <= the mid-th: take their max
        if values[k] > below:
            below = values[k]
    return 0.5 * (below + upper)


class RobustMad(RowStateDetector):
    """Median/MAD z-score over the last `window` values of each series.

    window: trailing values kept per series (state is window + 2 floats per series).
    The other parameters are those of every row-state detector (see `RowStateDetector`).
    """

    name = "robust_mad"
    _kernel = staticmethod(_robust_kernel)

    def __init__(self, window: int = 32, warmup: int = 32, **common) -> None:
        if not 3 <= window <= 256:
            raise ValueError(f"window must be between 3 and 256, got {window}")
        self.window = window
        self.width = _HEAD + window
        super().__init__(warmup=warmup, **common)

    def _kernel_params(self) -> tuple:
        return (self.window,)
