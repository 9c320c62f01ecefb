"""EWMA mean/variance z-score: the cheapest useful detector.

Use it for series that hover around a slowly moving level (latency, error ratio, queue depth) when
seasonality is weak. Each series keeps an exponentially weighted mean and variance; a point is
scored by how many standard deviations it lies from the mean *before* the point is absorbed, so the
score of a point never depends on later points.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from detectors._stats import gaussian_confidence
from detectors._steps import grow, time_steps
from detectors.types import MetricBatch, Scores

__all__ = ["EwmaZScore"]


class EwmaZScore:
    """Exponentially weighted z-score over many series.

    alpha: weight of the newest point in the mean and variance (0.05 ≈ a 14-point half-life).
    warmup: points a series needs before its scores may raise anything.
    band_sigmas: half-width of the expected band reported with each score, in standard deviations.
    min_std / rel_min_std: floor of the standard deviation, absolute and relative to |mean|, so a
    constant series does not turn its first wobble into an infinite z-score.
    """

    name = "ewma_zscore"
    _STATE_VERSION = 1

    def __init__(
        self,
        alpha: float = 0.05,
        warmup: int = 30,
        band_sigmas: float = 3.0,
        min_std: float = 1e-9,
        rel_min_std: float = 1e-3,
    ) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        if warmup < 1:
            raise ValueError(f"warmup must be at least 1, got {warmup}")
        self.alpha = alpha
        self.warmup = warmup
        self.band_sigmas = band_sigmas
        self.min_std = min_std
        self.rel_min_std = rel_min_std
        self._n_series = 0
        self._mean = np.zeros(0)
        self._var = np.zeros(0)
        self._count = np.zeros(0, dtype=np.int64)
        self._scratch = np.zeros(0, dtype=np.int64)

    @property
    def n_series(self) -> int:
        return self._n_series

    def update(self, batch: MetricBatch) -> Scores:
        n = len(batch)
        out = Scores(
            score=np.zeros(n),
            expected=np.full(n, np.nan),
            lower=np.full(n, np.nan),
            upper=np.full(n, np.nan),
            ready=np.zeros(n, dtype=bool),
        )
        if n == 0:
            return out
        self._ensure(int(batch.series_id.max()) + 1)
        steps = time_steps(batch.series_id, self._scratch)
        if steps is None:
            self._step(batch.series_id, batch.value, slice(None), out)
        else:
            for index in steps:
                self._step(batch.series_id[index], batch.value[index], index, out)
        return out

    def _step(self, sid: np.ndarray, x: np.ndarray, where, out: Scores) -> None:
        mean = self._mean[sid]
        var = self._var[sid]
        count = self._count[sid]
        seen = count > 0
        valid = np.isfinite(x)
        std = np.sqrt(var)
        np.maximum(std, np.maximum(self.min_std, self.rel_min_std * np.abs(mean)), out=std)
        z = np.where(seen & valid, (x - mean) / std, 0.0)
        width = self.band_sigmas * std
        out.score[where] = gaussian_confidence(z)
        out.expected[where] = np.where(seen, mean, np.nan)
        out.lower[where] = np.where(seen, mean - width, np.nan)
        out.upper[where] = np.where(seen, mean + width, np.nan)
        out.ready[where] = valid & (count >= self.warmup)

        a = self.alpha
        delta = np.where(valid, x - mean, 0.0)
        new_mean = np.where(seen, mean + a * delta, np.where(valid, x, 0.0))
        new_var = np.where(seen, (1.0 - a) * (var + a * delta * delta), 0.0)
        self._mean[sid] = new_mean
        self._var[sid] = new_var
        self._count[sid] = count + valid

    def _ensure(self, size: int) -> None:
        if size > self._n_series:
            self._mean = grow(self._mean, size, 0.0)
            self._var = grow(self._var, size, 0.0)
            self._count = grow(self._count, size, 0)
            self._scratch = grow(self._scratch, size, 0)
            self._n_series = size

    def state_dict(self) -> dict[str, Any]:
        n = self._n_series
        return {
            "version": self._STATE_VERSION,
            "mean": self._mean[:n].copy(),
            "var": self._var[:n].copy(),
            "count": self._count[:n].copy(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("version") != self._STATE_VERSION:
            raise ValueError(f"unsupported {self.name} state version {state.get('version')!r}")
        n = len(state["mean"])
        self._mean = np.array(state["mean"], dtype=np.float64)
        self._var = np.array(state["var"], dtype=np.float64)
        self._count = np.array(state["count"], dtype=np.int64)
        self._scratch = np.zeros(n, dtype=np.int64)
        self._n_series = n
