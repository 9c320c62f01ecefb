"""Time to threshold: when a forecast says a limit will be reached (disk full, quota, SLO budget).

For an upward threshold the upper band reaches it first (earliest), yhat next (likely) and the lower
band last (latest); for a downward one the roles of the bands swap. A crossing time is interpolated
linearly between the two horizon steps around it, and a series already past the threshold crosses
at once (the forecast's first timestamp is returned). The threshold may be one number or one limit
per horizon step (a quota that changes, a budget that refills).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from forecasting.types import Crossing, Forecast

__all__ = ["first_crossing", "time_to_threshold"]


def first_crossing(ts: np.ndarray, curve: np.ndarray, limit: np.ndarray, direction: str) -> float | None:
    """Earliest time at which `curve` reaches `limit` (>= for "up", <= for "down"), or None."""
    gap = (curve - limit) if direction == "up" else (limit - curve)
    hit = np.flatnonzero(np.isfinite(gap) & (gap >= 0))
    if len(hit) == 0:
        return None
    i = int(hit[0])
    if i == 0 or not np.isfinite(gap[i - 1]):
        return float(ts[i])
    frac = -gap[i - 1] / (gap[i] - gap[i - 1])  # gap[i-1] < 0 <= gap[i]
    return float(ts[i - 1] + frac * (ts[i] - ts[i - 1]))


def time_to_threshold(
    forecast: Forecast, threshold: float | np.ndarray, direction: Literal["up", "down"] = "up"
) -> Crossing | None:
    """Earliest, likely and latest crossing of `threshold` within the forecast horizon, or None
    when not even the far band reaches it (or the forecast is not usable)."""
    if direction not in ("up", "down"):
        raise ValueError(f"direction must be 'up' or 'down', got {direction!r}")
    if not forecast.ok:
        return None
    limit = np.broadcast_to(np.asarray(threshold, dtype=np.float64), forecast.yhat.shape)
    far, near = (forecast.upper, forecast.lower) if direction == "up" else (forecast.lower, forecast.upper)
    earliest = first_crossing(forecast.ts, far, limit, direction)
    if earliest is None:
        return None
    likely = first_crossing(forecast.ts, forecast.yhat, limit, direction)
    latest = first_crossing(forecast.ts, near, limit, direction)
    return Crossing(earliest, likely, latest, direction)
