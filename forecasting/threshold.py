"""Time to threshold: when a forecast says a limit will be reached (disk full, quota, SLO budget).

For an upward threshold the upper band reaches it first (earliest), yhat next (likely) and the lower
band last (latest); for a downward one the roles of the bands swap. A crossing time is interpolated
linearly between the two horizon steps around it, and a series already past the threshold crosses
at once (the forecast's first timestamp is returned). The threshold may be one number or one limit
per horizon step (a quota that changes, a budget that refills), and, for a batch, one per series.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from forecasting.types import Crossing, Forecast, ForecastBatch

__all__ = ["crossing_times", "first_crossing", "time_to_threshold"]

Direction = Literal["up", "down"]


def first_crossing(ts: np.ndarray, curve: np.ndarray, limit: np.ndarray, direction: str) -> np.ndarray:
    """Earliest time at which each row of `curve` (series, horizon) reaches `limit` (>= for "up",
    <= for "down"), interpolated between steps; NaN where it does not within the horizon."""
    curve = np.atleast_2d(curve)
    gap = (curve - limit) if direction == "up" else (limit - curve)
    hit = np.isfinite(gap) & (gap >= 0)
    found = hit.any(axis=1)
    i = np.argmax(hit, axis=1)
    prev = np.take_along_axis(gap, np.maximum(i - 1, 0)[:, None], axis=1)[:, 0]
    here = np.take_along_axis(gap, i[:, None], axis=1)[:, 0]
    at_once = (i == 0) | ~np.isfinite(prev)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(at_once, 0.0, -prev / (here - prev))  # prev < 0 <= here
    start = ts[np.maximum(i - 1, 0)]
    t = np.where(at_once, ts[i], start + frac * (ts[i] - start))
    return np.where(found, t, np.nan)


def crossing_times(
    batch: ForecastBatch, threshold: float | np.ndarray, direction: Direction = "up"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(earliest, likely, latest) crossing time of every series of a batch, NaN where none.
    `threshold`: a number, one limit per step (horizon,), per series (series, 1), or both."""
    if direction not in ("up", "down"):
        raise ValueError(f"direction must be 'up' or 'down', got {direction!r}")
    limit = np.broadcast_to(np.asarray(threshold, dtype=np.float64), batch.yhat.shape)
    far, near = (batch.upper, batch.lower) if direction == "up" else (batch.lower, batch.upper)
    return tuple(first_crossing(batch.ts, c, limit, direction) for c in (far, batch.yhat, near))  # type: ignore[return-value]


def time_to_threshold(forecast: Forecast, threshold: float | np.ndarray, direction: Direction = "up") -> Crossing | None:
    """Earliest, likely and latest crossing of `threshold` within the forecast horizon, or None
    when not even the far band reaches it (or the forecast is not usable)."""
    if direction not in ("up", "down"):
        raise ValueError(f"direction must be 'up' or 'down', got {direction!r}")
    if not forecast.ok:
        return None
    one = ForecastBatch(forecast.ts, forecast.yhat[None], forecast.lower[None], forecast.upper[None], [forecast.model],
                        np.array([forecast.backtest_error]), forecast.level)  # fmt: skip
    earliest, likely, latest = (float(v[0]) for v in crossing_times(one, threshold, direction))
    if np.isnan(earliest):
        return None
    return Crossing(earliest, None if np.isnan(likely) else likely, None if np.isnan(latest) else latest, direction)
