"""Level shift detection: a two-sided CUSUM on standardized deviations from a slow baseline.

Use it for steps that persist (a deploy that adds 20 ms to every request, a cache that stopped
hitting): each point alone may look ordinary, so point detectors stay quiet, but the cumulative sum of
small same-signed deviations grows until it crosses `threshold`. The score rises with the sum on
the common scale: a sum at the threshold scores 0.4 (as rare as a tail probability of 1e-4: under
no shift, the sum's tail falls roughly exponentially), twice the threshold 0.8. After a detection the
baseline jumps to the new level (the shift is learned, not re-alarmed).
"""

from __future__ import annotations

import math

import numba

from detectors._numeric import floored, write_band
from detectors._state import RowStateDetector, check_unit_interval

__all__ = ["LevelShift"]

_MEAN, _VAR, _COUNT, _UP, _DOWN, _RECENT = 0, 1, 2, 3, 4, 5
_AT_THRESHOLD = 0.4  # score of a sum equal to the threshold


@numba.njit(cache=True, nogil=True)
def _cusum_kernel(sid, ts, x, state, alpha, drift, threshold, warmup, band, min_std, rel_min_std, direction, score, expected, lower, upper, ready):
    for i in range(sid.shape[0]):
        row = state[sid[i]]
        v = x[i]
        if not math.isfinite(v):
            continue
        count = row[_COUNT]
        if count == 0.0:
            row[_MEAN] = v
            row[_RECENT] = v
            row[_COUNT] = 1.0
            continue
        mean = row[_MEAN]
        std = floored(math.sqrt(row[_VAR]), mean, min_std, rel_min_std)
        z = (v - mean) / std
        if z > 8.0:  # one wild point must not carry the sum alone
            z = 8.0
        elif z < -8.0:
            z = -8.0
        up = max(0.0, row[_UP] + z - drift)
        down = max(0.0, row[_DOWN] - z - drift)
        s = up if direction == 1 else down if direction == -1 else max(up, down)
        score[i] = min(1.0, s / threshold * _AT_THRESHOLD)
        write_band(i, mean, std, band, expected, lower, upper)
        ready[i] = count >= warmup
        row[_RECENT] = row[_RECENT] + 0.3 * (v - row[_RECENT])  # fast average: the new level
        if s >= threshold:
            row[_MEAN] = row[_RECENT]  # adopt the new level; start summing afresh
            up = 0.0
            down = 0.0
        else:
            a = max(alpha, 1.0 / (count + 1.0))  # running mean/variance until 1/alpha points are seen
            delta = v - mean
            row[_MEAN] = mean + a * delta
            row[_VAR] = (1.0 - a) * (row[_VAR] + a * delta * delta)
        if count < warmup:  # no sums while the baseline is still forming
            up = 0.0
            down = 0.0
        row[_UP] = up
        row[_DOWN] = down
        row[_COUNT] = count + 1.0


class LevelShift(RowStateDetector):
    """Two-sided CUSUM over deviations from an EWMA baseline, in baseline standard deviations.

    alpha: weight of the newest point in the baseline (small: the baseline must lag a shift).
    drift: slack per point, in standard deviations; deviations smaller than this never accumulate.
    threshold: the sum that counts as a shift (scores 0.4 there).
    The other parameters are those of every row-state detector (see `RowStateDetector`).
    """

    name = "level_shift"
    width = 6
    _kernel = staticmethod(_cusum_kernel)

    def __init__(self, alpha: float = 0.01, drift: float = 0.5, threshold: float = 10.0, warmup: int = 50, **common) -> None:
        if drift < 0 or threshold <= 0:
            raise ValueError(f"need drift >= 0 and threshold > 0, got drift={drift}, threshold={threshold}")
        super().__init__(warmup=warmup, **common)
        self.alpha = check_unit_interval("alpha", alpha)
        self.drift = drift
        self.threshold = threshold

    def _kernel_params(self) -> tuple:
        return (self.alpha, self.drift, self.threshold)
