"""Forecast one series by name of method: the entry point of `aiops forecast` and of capacity checks.

`forecast` prepares the history (counter → rate, cut at the last reset, too short → a result that
says so), then runs the chosen method: "auto" (the default: the fast path's backtest-weighted
combination), "auto_ets" (the same with statsmodels' fitted Holt-Winters as one more candidate:
slightly better on forecast-dev, a thousand times slower), one fast-path candidate by name
("snaive", "drift7", "hw1", ...), or a library forecaster ("holt_winters", "ets", "prophet"). Every result carries its backtest error: for the
library forecasters, from refitting on the history minus one horizon and forecasting that horizon.
"""

from __future__ import annotations

import math

import numpy as np

from forecasting._candidates import candidate_names
from forecasting.fast import DEFAULT_LEVEL, MIN_POINTS, forecast_many, seasons_for_step
from forecasting.prepare import Kind, prepare
from forecasting.statistical import ets_auto, holt_winters, holt_winters_candidate, prophet
from forecasting.types import Forecast

__all__ = ["LIBRARY_MODELS", "ModelNotFound", "forecast", "interval_scale", "model_names"]

LIBRARY_MODELS = ("holt_winters", "ets", "prophet")


class ModelNotFound(ValueError):
    """An unknown model name; the message lists the available ones."""


def model_names() -> list[str]:
    """Every name `forecast(model=...)` accepts."""
    return ["auto", "auto_ets", *candidate_names(24, 168), *LIBRARY_MODELS]


def forecast(
    value: np.ndarray,
    horizon: int,
    *,
    ts: np.ndarray | None = None,
    step: float = 1.0,
    model: str = "auto",
    level: float = DEFAULT_LEVEL,
    kind: Kind = "gauge",
    resets: bool = True,
    min_points: int = MIN_POINTS,
    calibrate: bool = True,
) -> Forecast:
    """Forecast `horizon` steps of one series sampled on a regular grid (`ts`, else `step` seconds).

    Counters (`kind="counter"`) are forecast as per-second rates. With `resets`, a gauge is
    forecast from after its last lasting drop. A history shorter than `min_points` (after that
    cut) gives a `Forecast` with status "too_short" and NaN values, never an exception. With
    `calibrate`, a library model's interval is rescaled by how it covered its backtest window
    (`interval_scale`); the fast path's intervals are calibrated by construction.
    """
    if model not in model_names():
        raise ModelNotFound(f"unknown model {model!r}; available: {', '.join(model_names())}")
    value = np.asarray(value, dtype=np.float64)
    ts = np.asarray(ts, dtype=np.float64) if ts is not None else step * np.arange(len(value), dtype=np.float64)
    p = prepare(ts, value, kind, resets)
    step = p.step if p.step > 0 else step
    last = float(p.ts[-1]) if len(p.ts) else (float(ts[-1]) if len(ts) else 0.0)
    future = last + step * np.arange(1, horizon + 1)
    if len(p.value) < min_points:
        note = f" after the reset at {p.reset_at:.0f}" if p.reset_at is not None else ""
        return Forecast.too_short(future, min_points, len(p.value), level, note)
    start = float(p.ts[0])
    if model not in LIBRARY_MODELS:
        only = None if model in ("auto", "auto_ets") else [model]
        extra = holt_winters_candidate if model == "auto_ets" else None
        row = forecast_many(
            p.value[None, :], horizon, ts=p.ts, level=level, candidates=only, extra=extra, min_points=min_points
        ).row(0)
        return Forecast(row.ts, row.yhat, row.lower, row.upper, row.model, row.backtest_error, level,
                        row.status, row.reason, start)  # fmt: skip
    season = seasons_for_step(step)[0]
    yhat, lower, upper = _library(model, p.ts, p.value, horizon, season, step, level)
    error = float("nan")
    if len(p.value) >= 2 * horizon + min_points:  # one rolling-origin window: refit without the last horizon
        back = _library(model, p.ts[:-horizon], p.value[:-horizon], horizon, season, step, level)
        actual = p.value[-horizon:]
        error = float(np.mean(np.abs(back[0] - actual)))
        if calibrate:
            c = interval_scale(*back, actual, level)
            lower, upper = yhat - c * (yhat - lower), yhat + c * (upper - yhat)
    return Forecast(future, yhat, lower, upper, model, error, level, history_start=start)


def interval_scale(yhat: np.ndarray, lower: np.ndarray, upper: np.ndarray, actual: np.ndarray, level: float) -> float:
    """The factor by which an interval's distances from yhat must be stretched so that `level` of
    the `actual` values of a backtest window fall inside (split conformal over the window's steps).

    A library's own interval rests on its model's assumptions; on forecast-dev Prophet's nominal
    80% covers 64%, Holt-Winters' 93%. Scaling by what the interval did on the series' last
    horizon keeps the library's shape (asymmetry, growth with the step) and makes the width honest.
    """
    above = actual >= yhat
    room = np.where(above, upper - yhat, yhat - lower)
    miss = np.abs(actual - yhat)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(room > 0, miss / room, np.where(miss > 0, np.inf, 0.0))
    ratio = np.sort(np.where(np.isnan(ratio), np.inf, ratio))
    rank = math.ceil((len(ratio) + 1) * level)  # split conformal: the rank-th smallest of N
    c = float(ratio[min(rank, len(ratio)) - 1])
    return c if np.isfinite(c) else 1.0  # no width where it missed: nothing to scale


def _library(model: str, ts, value, horizon: int, season: int, step: float, level: float):
    if model == "holt_winters":
        return holt_winters(value, horizon, season, level)
    if model == "ets":
        return ets_auto(value, horizon, season, level)
    return prophet(ts, value, horizon, step, level)
