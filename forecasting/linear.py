"""Linear extrapolation of the recent past, for many series at once: Prometheus' `predict_linear`
with prediction intervals.

Capacity alerts ask "at this rate, when is it full?". A least-squares line through the last
`window` points of each row answers that directly and reacts within a few points to a disk that
starts filling, where a method chosen by backtest over weeks of flat history would keep forecasting
flat. The interval is the ordinary least-squares prediction interval (residual spread, widened for
distance from the window's centre), with a normal quantile; rows with fewer than `min_points`
finite points in the window are "too short".
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

from forecasting.prepare import last_resets
from forecasting.types import ForecastBatch, Status

__all__ = ["predict_linear"]


def predict_linear(
    values: np.ndarray, horizon: int, *, step: float, last_ts: float, window: int, level: float = 0.8,
    min_points: int = 4, resets: bool = False,
) -> ForecastBatch:
    """Fit a line to the last `window` columns of each row of `values` (series × time, NaN = missing)
    and extrapolate it `horizon` steps of `step` seconds past `last_ts`. With `resets` (gauges such as
    disk usage), a row is fit only after its last lasting drop (`prepare.last_resets`), so a disk that
    was cleaned up is judged by how it fills again. A window over a strongly seasonal series tilts
    the line unless it spans whole seasons; such series are better served by `forecast_many`."""
    if window < 2 or horizon < 1 or not 0 < level < 1:
        raise ValueError(f"need window >= 2, horizon >= 1 and 0 < level < 1, got {window}, {horizon}, {level}")
    X = np.array(values, dtype=np.float64, ndmin=2)[:, -window:]
    S, w = X.shape
    if resets:
        cut = last_resets(X)
        X[np.arange(w)[None, :] < cut[:, None]] = np.nan
    t = np.arange(w, dtype=np.float64) - (w - 1)  # 0 at the last column, in steps
    ok = np.isfinite(X)
    n = ok.sum(axis=1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        tm = np.where(ok, t, 0.0).sum(axis=1) / n
        xm = np.where(ok, X, 0.0).sum(axis=1) / n
        dt = np.where(ok, t - tm[:, None], 0.0)
        sxx = (dt * dt).sum(axis=1)
        slope = (dt * np.where(ok, X - xm[:, None], 0.0)).sum(axis=1) / sxx
        resid = np.where(ok, X - (xm[:, None] + slope[:, None] * (t - tm[:, None])), 0.0)
        sd = np.sqrt((resid * resid).sum(axis=1) / np.maximum(n - 2, 1))
        ahead = np.arange(1, horizon + 1, dtype=np.float64)[None, :]
        yhat = xm[:, None] + slope[:, None] * (ahead - tm[:, None])
        spread = sd[:, None] * np.sqrt(1 + 1 / n[:, None] + (ahead - tm[:, None]) ** 2 / sxx[:, None])
    z = NormalDist().inv_cdf(0.5 + level / 2)
    short = (n < min_points) | ~(sxx > 0)
    yhat[short] = np.nan
    lower, upper = yhat - z * spread, yhat + z * spread
    status: list[Status] = ["too_short" if s else "ok" for s in short]
    reason = [f"too short: need {min_points} points in the last {w}, got {int(k)}" if s else ""
              for s, k in zip(short, n)]
    ts = last_ts + step * np.arange(1, horizon + 1)
    error = np.where(short, np.nan, sd)  # in-window residual spread: the line's own fit error
    return ForecastBatch(ts, yhat, lower, upper, ["linear"] * S, error, level, status, reason)

