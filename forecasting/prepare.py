"""Turning a raw series into the history a forecaster should see.

- A counter's level says nothing about the future; its rate does. `kind="counter"` forecasts the
  per-second increase (a decrease is read as a counter reset, as Prometheus' rate() does).
- A gauge that was reset (a disk cleaned up, a queue drained, a process restarted) follows a new
  course from the reset: forecasting through it would average two regimes and aim the trend the
  wrong way. `last_reset` finds the last drop that is both large against the series' usual
  step-to-step change and lasting (the series does not climb back within a season), and the
  forecast uses only what follows it.
"""

from __future__ import annotations

from dataclasses import dataclass
import warnings
from typing import Literal

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = ["Kind", "Prepared", "counter_rate", "last_reset", "last_resets", "prepare"]

Kind = Literal["gauge", "counter"]


@dataclass(frozen=True)
class Prepared:
    ts: np.ndarray
    value: np.ndarray
    step: float  # seconds between points (median)
    reset_at: float | None  # timestamp of the first point after the last reset, if one was cut


def counter_rate(ts: np.ndarray, value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-second increase between consecutive samples; a decrease counts from zero (a reset)."""
    inc = np.diff(value)
    inc = np.where(inc < 0, value[1:], inc)
    dt = np.diff(ts)
    ok = dt > 0
    return ts[1:][ok], inc[ok] / dt[ok]


def last_reset(value: np.ndarray, season: int = 1, min_drop: float = 8.0, min_share: float = 0.2) -> int | None:
    """Index of the first point after the last lasting drop, or None.

    A drop from t-1 to t counts when it is larger than `min_drop` times the typical step-to-step
    change (median absolute difference, so a few large steps do not hide it) and larger than
    `min_share` of the series' range, and everything after it (at least a season) lies below the
    whole season before it: a daily dip that comes back, the fall after a spike, or an outage after
    which the series returned to its old range is not a reset, and a drop less than a season old
    cannot yet be told from a dip and is not cut.
    """
    cut = last_resets(np.asarray(value, dtype=np.float64)[None, :], season, min_drop, min_share)[0]
    return int(cut) if cut >= 0 else None


def last_resets(X: np.ndarray, season: int = 1, min_drop: float = 8.0, min_share: float = 0.2) -> np.ndarray:
    """`last_reset` for every row of a (series, time) array at once: the index of the first point
    after each row's last lasting drop, or -1. NaN (a row not yet started) never counts as a drop."""
    S, n = X.shape
    w = max(season, 3)
    out = np.full(S, -1)
    if n < w + 2:
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows
        d = np.diff(X, axis=1)  # d[:, i]: from point i to point i + 1
        typical = np.nanmedian(np.abs(d), axis=1)
        spread = np.nanmax(X, axis=1) - np.nanmin(X, axis=1)
    limit = np.maximum(min_drop * typical, min_share * spread)
    big = (-d > limit[:, None]) & (spread > 0)[:, None]
    # lowest of the w points up to i (inf-padded on the left); highest of everything after i, which
    # must hold at least w points
    padded = np.concatenate([np.full((S, w - 1), np.inf), np.where(np.isnan(X), np.inf, X)], axis=1)
    before_min = sliding_window_view(padded, w, axis=1).min(axis=2)[:, : n - 1]
    after_max = np.maximum.accumulate(X[:, :0:-1], axis=1)[:, ::-1]  # [:, i]: max of X[:, i + 1 :]
    after_max[:, n - w :] = np.inf
    lasting = big & (after_max < before_min)
    has = lasting.any(axis=1)
    out[has] = n - 1 - np.argmax(lasting[has, ::-1], axis=1)  # (index of the last lasting drop) + 1
    return out


def prepare(ts: np.ndarray, value: np.ndarray, kind: Kind = "gauge", resets: bool = True) -> Prepared:
    """Sort by time, drop non-finite points, rate a counter, and cut a gauge at its last reset."""
    ts = np.asarray(ts, dtype=np.float64)
    value = np.asarray(value, dtype=np.float64)
    keep = np.isfinite(ts) & np.isfinite(value)
    ts, value = ts[keep], value[keep]
    order = np.argsort(ts, kind="stable")
    ts, value = ts[order], value[order]
    if kind == "counter":
        ts, value = counter_rate(ts, value)
    elif kind != "gauge":
        raise ValueError(f"kind must be 'gauge' or 'counter', got {kind!r}")
    step = float(np.median(np.diff(ts))) if len(ts) > 1 else 0.0
    reset_at = None
    if resets and kind == "gauge" and len(ts) > 2:
        from forecasting.fast import seasons_for_step  # (fast imports this module)

        cut = last_reset(value, seasons_for_step(step)[0])
        if cut is not None:
            reset_at = float(ts[cut])
            ts, value = ts[cut:], value[cut:]
    return Prepared(ts, value, step, reset_at)
