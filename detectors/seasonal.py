"""Seasonal baseline: a level plus time-of-day and day-of-week profiles, learned online.

Use it for series that follow the clock (traffic, CPU of user-facing services, queue depth of batch
jobs): a value normal at 14:00 may be an anomaly at 03:00, which a level-only detector cannot see.
Expected value = level + day_profile[bin of the UTC time of day] + week_profile[UTC weekday]. Each
point nudges the level and the two profile entries it falls in (each profile kept zero-mean so the
level stays the level), and the residual's exponentially weighted variance gives the band.

Where history exists, `seed` fits the profiles at once with STL (statsmodels) instead of waiting days
for them to be learned online; it runs off the hot path (at start, or when a series is first
configured) and writes the same state the online updates would.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from detectors._numeric import direction_bounds, directional, floored, gaussian_surprise, write_band
from detectors._state import RowStateDetector, check_unit_interval

__all__ = ["SeasonalBaseline"]

_LEVEL, _VAR, _COUNT, _FIRST_TS, _DAY_SHIFT, _WEEK_SHIFT = 0, 1, 2, 3, 4, 5
_HEAD = 6  # then the day profile, then the week profile; a bin's value is its entry minus the shift
_DAY, _WEEK = 86400.0, 7


@numba.njit(cache=True, nogil=True)
def _seasonal_kernel(
    sid, ts, x, state, day_bins, alpha_level, alpha_season, alpha_var, warmup_s,
    warmup, band, min_std, rel_min_std, direction, score, expected, lower, upper, ready,
):  # fmt: skip
    week0 = _HEAD + day_bins
    low, high = direction_bounds(direction)
    for i in range(sid.shape[0]):
        row = state[sid[i]]
        v = x[i]
        if not math.isfinite(v):
            continue
        t = ts[i]
        b = _HEAD + int((t % _DAY) / _DAY * day_bins)
        d = week0 + int(((t // _DAY) + 3) % _WEEK)  # 1970-01-01 was a Thursday: Monday is 0
        count = row[_COUNT]
        if count == 0.0:
            row[_LEVEL] = v
            row[_FIRST_TS] = t
            row[_COUNT] = 1.0
            continue
        day = row[b] - row[_DAY_SHIFT]
        week = row[d] - row[_WEEK_SHIFT]
        center = row[_LEVEL] + day + week
        std = floored(math.sqrt(row[_VAR]), center, min_std, rel_min_std)
        resid = v - center
        score[i] = gaussian_surprise(directional(resid, low, high) / std)
        write_band(i, center, std, band, expected, lower, upper)
        ready[i] = count >= warmup and (t - row[_FIRST_TS]) >= warmup_s
        # learn: level from the deseasonalized value, each profile from what the rest leaves over;
        # a profile stays zero-mean by moving its shift, not every bin (O(1) per point)
        a = max(alpha_level, 1.0 / (count + 1.0))
        row[_LEVEL] += a * (v - day - week - row[_LEVEL])
        step = alpha_season * (v - row[_LEVEL] - week - day)
        row[b] += step
        row[_DAY_SHIFT] += step / day_bins
        day = row[b] - row[_DAY_SHIFT]
        step = alpha_season * (v - row[_LEVEL] - day - week) / 4.0  # a weekday comes 1/7 as often
        row[d] += step
        row[_WEEK_SHIFT] += step / _WEEK
        av = max(alpha_var, 1.0 / (count + 1.0))
        row[_VAR] = (1.0 - av) * (row[_VAR] + av * resid * resid)
        row[_COUNT] = count + 1.0


class SeasonalBaseline(RowStateDetector):
    """Level + time-of-day + day-of-week baseline (UTC) with a residual z-score.

    day_bins: bins of the day profile (24: hourly). State is 6 + day_bins + 7 floats per series.
    alpha_level, alpha_season, alpha_var: learning rates of the level, of a profile bin on each of its
    visits, and of the residual variance.
    warmup_s: time a series must have been seen before its scores may raise anything, besides
    `warmup` points (a day, so every bin of the day profile has been visited).
    """

    name = "seasonal"
    _kernel = staticmethod(_seasonal_kernel)

    def __init__(
        self,
        day_bins: int = 24,
        alpha_level: float = 0.02,
        alpha_season: float = 0.1,
        alpha_var: float = 0.01,
        warmup_s: float = 86400.0,
        warmup: int = 48,
        **common,
    ) -> None:
        if not 1 <= day_bins <= 288:
            raise ValueError(f"day_bins must be between 1 and 288, got {day_bins}")
        self.day_bins = day_bins
        self.width = _HEAD + day_bins + _WEEK
        super().__init__(warmup=warmup, **common)
        self.alpha_level = check_unit_interval("alpha_level", alpha_level)
        self.alpha_season = check_unit_interval("alpha_season", alpha_season)
        self.alpha_var = check_unit_interval("alpha_var", alpha_var)
        self.warmup_s = warmup_s

    def _kernel_params(self) -> tuple:
        return (self.day_bins, self.alpha_level, self.alpha_season, self.alpha_var, self.warmup_s)

    def seed(self, series_id: int, ts: np.ndarray, values: np.ndarray) -> bool:
        """Initialise one series from its history with STL; False when there is too little of it.

        Needs two days of roughly regular samples. The day profile comes from STL's seasonal
        component, the week profile from the mean remainder per weekday (when a week or more is
        there), the level from the trend's last value and the variance from the remainder.
        """
        from statsmodels.tsa.seasonal import STL

        ts = np.asarray(ts, dtype=float)
        values = np.asarray(values, dtype=float)
        keep = np.isfinite(values) & np.isfinite(ts)
        ts, values = ts[keep], values[keep]
        if len(ts) < 8 or ts[-1] - ts[0] < 2 * _DAY:
            return False
        step = float(np.median(np.diff(ts)))
        period = int(round(_DAY / step)) if step > 0 else 0
        if period < 2 or len(values) < 2 * period:
            return False
        fit = STL(values, period=period, robust=True).fit()
        bins = ((ts % _DAY) / _DAY * self.day_bins).astype(int)
        day = np.zeros(self.day_bins)
        for b in range(self.day_bins):
            sel = bins == b
            day[b] = fit.seasonal[sel].mean() if sel.any() else 0.0
        day -= day.mean()
        week = np.zeros(_WEEK)
        if ts[-1] - ts[0] >= 7 * _DAY:
            weekday = (((ts // _DAY) + 3) % _WEEK).astype(int)
            for d in range(_WEEK):
                sel = weekday == d
                week[d] = fit.resid[sel].mean() if sel.any() else 0.0
            week -= week.mean()
        self._ensure(series_id + 1)
        row = self._state[series_id]
        row[_LEVEL] = fit.trend[-1]
        row[_VAR] = float(np.var(fit.resid - week[(((ts // _DAY) + 3) % _WEEK).astype(int)]))
        row[_COUNT] = float(len(values))
        row[_FIRST_TS] = ts[0]
        row[_DAY_SHIFT] = row[_WEEK_SHIFT] = 0.0
        row[_HEAD : _HEAD + self.day_bins] = day
        row[_HEAD + self.day_bins :] = week
        return True
