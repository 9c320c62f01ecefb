"""The default ensemble: level, seasonal, range and roughness detectors, calibrated, one alarm per episode.

Use it when nothing is known about a series; it is what `aiops score` and the NAB benchmark run.

Members, all updated in one compiled pass over the batch:
- **level**: the error of an EWMA forecast, in standard deviations of its own past errors; and
  **slow level**, the same with a slow EWMA (`slow_alpha`), which still sees a gradual drift or a
  sustained shift after the fast forecast has followed it.
- **seasonal**: the error of a time-of-day profile (UTC bins, each with its own mean and variance).
  It only counts for a series where the profile forecasts clearly better than the level (its mean
  absolute error below `seasonal_ratio` times the level's), so it stays silent on series without a
  daily rhythm and catches a missing or misplaced daily pattern on those with one.
- **range**: a value beyond everything seen so far by more than `range_margin` of the range, once
  the series has been watched for `range_after_s` (a day: before a whole daily cycle has been seen,
  every morning's rise would be a new record).
- **roughness**: the same novelty test on how the series moves instead of where it is: the smallest
  of the last three absolute changes, beyond its largest value so far by more than
  `roughness_margin`. Three large moves in a row (a series that starts to oscillate or to jump
  between levels, a fast ramp) is behaviour never seen before even when every value stays within
  the range, and the residual members miss it on series whose error scale earlier spikes have
  inflated. Three, because a one-point spike (one move up, one down) can never produce it, so a
  spiky series does not fire on spikes no taller than before. It scores `range_score`, like range.

Calibration: a raw error is not yet a probability, and series differ in how noisy they are. Each
member's error goes through `detectors.calibration.likelihood` (Numenta's anomaly likelihood): a
short average compared with its own long-run distribution, as a tail probability on the common
scale. A sustained change thus scores higher than a single noisy point of the same size.

One alarm per episode: with `onset_only`, a point scores only when its score rises above the
recent peak (which halves every `onset_half_life` points) by more than `onset_gap`, so an anomaly
that persists raises one alarm at its start instead of one per point; the band and the members'
contributions are still reported for every point. The gap matters because a calibrated score climbs
over several points after an abrupt change (the short average catches up): without it every point
of the climb is a new peak and one episode alarms three to six times in a row. With `onset_gap` 0.1
a repeat within an episode needs evidence ten times rarer than what was already reported.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from detectors._numeric import DIRECTIONS, direction_bounds, directional, floored, write_band
from detectors._state import RowStateDetector, check_unit_interval, row_order
from detectors.calibration import likelihood
from detectors.types import MetricBatch, Scores

__all__ = ["DefaultEnsemble"]

# state row layout
_N, _LV_M, _LV_EV, _LV_EN, _LV_SEEN = 0, 1, 2, 3, 4
_CL = 5  # level calibration: short mean, long mean, long variance, count
_CD = 9  # seasonal calibration
_EL, _ED, _LO, _HI, _PEAK, _FIRST = 13, 14, 15, 16, 17, 18
_SL_M, _SL_EV, _SL_EN = 19, 20, 21  # slow level: mean, error variance, error count
_CS = 22  # slow-level calibration
_RV, _RD1, _RD2, _RREC = 26, 27, 28, 29  # roughness: previous value, last two |changes|, record
_DAY = 30  # the day bins' (mean, variance, count) follow in the logical row; kept apart in memory (`_bins`)
_DAY_SECONDS = 86400.0


@numba.njit(inline="always", cache=True)
def _forecast_z(row, at, v, seen, alpha, err_alpha, low, high):
    """Standardized error of the EWMA forecast kept at row[at:at+3] (mean, error variance, error
    count) for value `v`, counted only the watched way (`low`, `high`: see `directional`), then
    learn from it; 0 until two errors are known."""
    mean = row[at]
    err = v - mean
    z = 0.0
    if row[at + 2] >= 2.0:
        z = min(abs(directional(err, low, high)) / max(math.sqrt(row[at + 1]), 1e-9), 10.0)
    b = max(err_alpha, 1.0 / (row[at + 2] + 1.0))
    row[at + 1] = max((1.0 - b) * row[at + 1] + b * err * err, (1e-3 * abs(mean)) ** 2)
    row[at + 2] += 1.0
    row[at] = mean + max(alpha, 1.0 / (seen + 1.0)) * err
    return z


@numba.njit(cache=True, nogil=True)
def _ensemble_kernel(
    order, sid, ts, x, state, bins, alpha, slow_alpha, err_alpha, short, long, day_bins, season_alpha, seasonal_ratio, selection_alpha,
    range_margin, range_score, range_after_s, roughness_margin, onset_decay, onset_gap, onset_only, warmup,
    band, min_std, rel_min_std, direction,
    score, expected, lower, upper, ready, c_level, c_seasonal, c_range, c_rough,
):  # fmt: skip
    low, high = direction_bounds(direction)
    watch_up, watch_down = high > 0.0, low < 0.0
    for j in range(order.shape[0]):
        i = order[j]
        row = state[sid[i]]
        brow = bins[sid[i]]
        v = x[i]
        if not math.isfinite(v):
            continue
        seen = row[_N]
        if seen == 0.0:
            row[_FIRST] = ts[i]
        # level members, fast and slow
        z_level = 0.0
        z_slow = 0.0
        level_before = row[_LV_M]
        had_level = row[_LV_SEEN] > 0.0
        sd_level = max(math.sqrt(row[_LV_EV]), 1e-9)
        if had_level:
            z_level = _forecast_z(row, _LV_M, v, seen, alpha, err_alpha, low, high)
            z_slow = _forecast_z(row, _SL_M, v, seen, slow_alpha, err_alpha, low, high)
        else:
            row[_LV_M] = v
            row[_SL_M] = v
            row[_LV_SEEN] = 1.0
        spread = row[_HI] - row[_LO]
        # seasonal member
        second = ts[i] - _DAY_SECONDS * math.floor(ts[i] / _DAY_SECONDS)  # floor, not a slow fmod; exact
        k = 3 * min(int(second * day_bins / _DAY_SECONDS), day_bins - 1)  # for whole seconds
        day_mean = brow[k]
        day_count = brow[k + 2]
        z_day = -1.0
        day_err = 0.0
        day_sd = 0.0
        if day_count >= 1.0:
            day_err = v - day_mean
            day_sd = max(math.sqrt(brow[k + 1]), max(1e-3 * spread, 1e-9))
            if day_count >= 3.0:
                z_day = min(abs(directional(day_err, low, high)) / day_sd, 10.0)
            a = max(season_alpha, 1.0 / (day_count + 1.0))
            brow[k] = day_mean + a * day_err
            brow[k + 1] = (1.0 - a) * brow[k + 1] + a * day_err * day_err
        else:
            brow[k] = v
        brow[k + 2] = day_count + 1.0
        # calibrate and combine
        s_level = max(likelihood(row, _CL, z_level, short, long), likelihood(row, _CS, z_slow, short, long))
        s = s_level
        s_season = 0.0
        seasonal = False
        if z_day >= 0.0:
            s_day = likelihood(row, _CD, z_day, short, long)
            seasonal = math.isfinite(row[_EL]) and math.isfinite(row[_ED]) and row[_ED] < seasonal_ratio * row[_EL]
            if seasonal:
                s_season = s_day
                s = max(s, s_day)
            row[_ED] = abs(day_err) if not math.isfinite(row[_ED]) else row[_ED] + selection_alpha * (abs(day_err) - row[_ED])
        if had_level:
            e = abs(v - level_before)
            row[_EL] = e if not math.isfinite(row[_EL]) else row[_EL] + selection_alpha * (e - row[_EL])
        s_range = 0.0
        watched = ts[i] - row[_FIRST] >= range_after_s
        if watched and spread > 0.0 and (
            (watch_up and v > row[_HI] + range_margin * spread) or (watch_down and v < row[_LO] - range_margin * spread)
        ):
            s_range = range_score
            s = max(s, s_range)
        row[_LO] = min(row[_LO], v)
        row[_HI] = max(row[_HI], v)
        s_rough = 0.0
        if seen >= 1.0:
            change = abs(v - row[_RV])
            if seen >= 3.0:
                moved = min(change, min(row[_RD1], row[_RD2]))
                rising = v > row[_RV]
                if (watched and row[_RREC] > 0.0 and moved > (1.0 + roughness_margin) * row[_RREC]
                        and ((watch_up and rising) or (watch_down and not rising))):
                    s_rough = range_score
                    s = max(s, s_rough)
                row[_RREC] = max(row[_RREC], moved)
            row[_RD2] = row[_RD1]
            row[_RD1] = change
        row[_RV] = v
        # explain, gate, emit
        if seasonal:
            write_band(i, day_mean, floored(day_sd, day_mean, min_std, rel_min_std), band, expected, lower, upper)
        elif had_level:
            write_band(i, level_before, floored(sd_level, level_before, min_std, rel_min_std), band, expected, lower, upper)
        is_ready = seen >= warmup
        ready[i] = is_ready
        if not is_ready:
            s = 0.0
        c_level[i] = s_level
        c_seasonal[i] = s_season
        c_range[i] = s_range
        c_rough[i] = s_rough
        peak = row[_PEAK]
        if not onset_only or s > peak + onset_gap:
            score[i] = s
            row[_PEAK] = s
        else:  # not reported: a score held at or below the peak keeps it from decaying, as before
            score[i] = 0.0
            row[_PEAK] = max(min(s, peak), peak * onset_decay)
        row[_N] = seen + 1.0


class DefaultEnsemble(RowStateDetector):
    """Level + seasonal + range + roughness members, anomaly-likelihood calibration, one alarm per episode.

    alpha, slow_alpha, err_alpha: learning rates of the fast and slow level forecasts and of their
    error variances.
    short, long: learning rates of the calibration's short average and long-run distribution.
    day_bins, season_alpha: the time-of-day profile's bins (UTC) and per-visit learning rate.
    seasonal_ratio, selection_alpha: the profile counts when its mean absolute error (learned at
    `selection_alpha`) is below this fraction of the level forecast's.
    range_margin, range_score, range_after_s: a value beyond the range seen so far by this fraction
    of it scores `range_score`, once the series has been watched for `range_after_s` seconds.
    roughness_margin: the smallest of the last three absolute changes beyond its largest value so far
    by this fraction of it scores `range_score` too (same watch time).
    onset_only, onset_half_life, onset_gap: one alarm per episode (see the module docstring).
    warmup: points before anything may score. State: 30 + 3·day_bins floats per series.
    """

    name = "ensemble"
    _STATE_VERSION = 2  # 2: the row grew by the roughness member's four slots

    def __init__(
        self,
        alpha: float = 0.05,
        slow_alpha: float = 0.0005,
        err_alpha: float = 0.01,
        short: float = 0.05,
        long: float = 0.001,
        day_bins: int = 24,
        season_alpha: float = 0.1,
        seasonal_ratio: float = 0.5,
        selection_alpha: float = 0.005,
        range_margin: float = 0.05,
        range_score: float = 0.9,
        range_after_s: float = 86400.0,
        roughness_margin: float = 0.2,
        onset_only: bool = True,
        onset_half_life: float = 50.0,
        onset_gap: float = 0.1,
        warmup: int = 150,
        **common,
    ) -> None:
        if not 1 <= day_bins <= 96:
            raise ValueError(f"day_bins must be between 1 and 96, got {day_bins}")
        if not 0 <= onset_gap < 1:
            raise ValueError(f"onset_gap must be in [0, 1), got {onset_gap}")
        if onset_half_life <= 0 or range_margin < 0 or roughness_margin < 0 or not 0 <= range_score <= 1 or seasonal_ratio <= 0:
            raise ValueError(
                "need onset_half_life > 0, range_margin and roughness_margin >= 0, 0 <= range_score <= 1, seasonal_ratio > 0"
            )
        self.day_bins = day_bins
        self.width = _DAY + 3 * day_bins
        super().__init__(warmup=warmup, **common)
        self._state = np.empty((0, _DAY))
        self._bins = np.empty((0, 3 * day_bins))
        self.alpha = check_unit_interval("alpha", alpha)
        self.slow_alpha = check_unit_interval("slow_alpha", slow_alpha)
        self.err_alpha = check_unit_interval("err_alpha", err_alpha)
        self.short = check_unit_interval("short", short)
        self.long = check_unit_interval("long", long)
        self.season_alpha = check_unit_interval("season_alpha", season_alpha)
        self.selection_alpha = check_unit_interval("selection_alpha", selection_alpha)
        self.seasonal_ratio = seasonal_ratio
        self.range_margin = range_margin
        self.range_score = range_score
        self.range_after_s = range_after_s
        self.roughness_margin = roughness_margin
        self.onset_only = onset_only
        self.onset_half_life = onset_half_life
        self.onset_gap = onset_gap

    # The logical row (what state_dict holds) is the header and the day bins side by side; in memory
    # the bins live in an array of their own, so the header rows a point always touches (240 B) are
    # dense and the one bin it visits is a single cache line: 1.3x the points/s at 100,000 series.

    def _ensure(self, size: int) -> None:
        if size <= self._n_series:
            return
        if size > len(self._state):
            capacity = max(size, 2 * len(self._state), 64)
            header, bins = np.empty((capacity, _DAY)), np.empty((capacity, self.width - _DAY))
            header[: self._n_series] = self._state[: self._n_series]
            bins[: self._n_series] = self._bins[: self._n_series]
            self._state, self._bins = header, bins
        init = self._init_row()
        self._state[self._n_series : size] = init[:_DAY]
        self._bins[self._n_series : size] = init[_DAY:]
        self._n_series = size

    def state_dict(self) -> dict:
        rows = np.hstack([self._state[: self._n_series], self._bins[: self._n_series]])
        return {"version": self._STATE_VERSION, "state": rows}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)  # checks the version and the logical shape
        rows = self._state
        self._state, self._bins = rows[:, :_DAY].copy(), rows[:, _DAY:].copy()

    def _init_row(self) -> np.ndarray:
        row = np.zeros(self.width)
        row[_EL] = row[_ED] = np.nan
        row[_LO] = np.inf
        row[_HI] = -np.inf
        return row

    @property
    def _kernel(self):
        return _ensemble_kernel

    def _kernel_params(self) -> tuple:
        return ()

    def update(self, batch: MetricBatch) -> Scores:
        n = len(batch)
        out = Scores.empty(n)
        components = {"level": np.zeros(n), "seasonal": np.zeros(n), "range": np.zeros(n), "roughness": np.zeros(n)}
        out = Scores(out.score, out.expected, out.lower, out.upper, out.ready, components)
        if n == 0:
            return out
        self._ensure(int(batch.series_id.max()) + 1)
        _ensemble_kernel(
            row_order(batch.series_id, self._n_series), batch.series_id, batch.ts, batch.value, self._state, self._bins,
            self.alpha, self.slow_alpha, self.err_alpha, self.short, self.long, self.day_bins, self.season_alpha,
            self.seasonal_ratio, self.selection_alpha, self.range_margin, self.range_score, self.range_after_s,
            self.roughness_margin, 0.5 ** (1.0 / self.onset_half_life), self.onset_gap, self.onset_only, float(self.warmup),
            self.band_sigmas, self.min_std, self.rel_min_std, DIRECTIONS[self.direction],
            out.score, out.expected, out.lower, out.upper, out.ready,
            components["level"], components["seasonal"], components["range"], components["roughness"],
        )  # fmt: skip
        return out
