"""Capacity forecasts in the service: which series, their history, the runs, and predictive alerts.

Series matching a `forecasting.rules` selector (decided once, when a series is first seen) get a
downsampled history (`aiops.history`); so do the limit series a rule names (`limit_metric`: the
series with that name and the same other labels, e.g. a memory limit). Every `every_s`, a thread of
its own forecasts every watched series of a rule in one vectorized call (`forecasting.forecast_many`,
the automatic choice by rolling-origin backtest), finds when each forecast crosses its limit
(earliest from the far interval bound, likely from the forecast, latest from the near bound), stores
the latest forecast per series, and hands the pipeline its verdicts: a predictive alert for each
series whose likely crossing is closer than `lead_time_s` (critical when even the near bound
crosses that soon), and the resolution of predictive alerts whose risk is gone.

In a Kafka worker (aiops.worker) the same service forecasts the series of the partitions the worker
owns: their history travels in the partition checkpoints (`series_state`, `load_series_state`), a
revoked partition's series are forgotten (`forget`), and stored forecasts name series by the store's
ids, resolved by identity (`shared_series`, aiops.shared_series), since the worker's ids are its own.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import delete, insert

from aiops.alerts import AnomalyRecord, fingerprint_of
from aiops.history import HistoryKeeper
from aiops.matchers import parse_selector
from aiops.settings import ForecastingSettings, ForecastRule
from aiops.shared_series import StoreSeries
from aiops.store import StoreEngine
from aiops.store.schema import forecasts
from detectors import MetricBatch
from forecasting import ForecastBatch, crossing_times, forecast, forecast_many
from forecasting.linear import predict_linear
from ingest.registry import SeriesRegistry, grow_id_map

__all__ = ["ForecastService", "Verdicts"]

log = logging.getLogger(__name__)

_UNDECIDED, _NONE = -2, -1


@dataclass(frozen=True)
class Verdicts:
    """What one forecast run tells the alerting: risks to alert on, fingerprints whose risk is gone."""

    at_risk: list[AnomalyRecord]
    cleared: list[str]


class ForecastService:
    def __init__(self, settings: ForecastingSettings, registry: SeriesRegistry, store: StoreEngine,
                 clock: Callable[[], float] = time.time, shared_series: StoreSeries | None = None) -> None:
        self.registry = registry
        self.store = store
        self.clock = clock
        self.shared_series = shared_series  # None: registry ids are the store's (one process writes series)
        self._generation = 0  # bumped by `forget`: a run that overlapped it hands over no verdicts
        self.verdicts: queue.Queue[Verdicts] = queue.Queue(maxsize=16)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.configure(settings)

    def configure(self, settings: ForecastingSettings) -> None:
        """(Re)build from settings; history is kept when the step and length are unchanged."""
        with self._lock:
            old = getattr(self, "history", None)
            self.settings = settings
            if old is None or old.step_s != settings.step_s or old.n != settings.buckets:
                self.history = HistoryKeeper(settings.step_s, settings.buckets)
            self._selectors = [parse_selector(r.selector) for r in settings.rules]
            self._limit_names = {r.limit_metric for r in settings.rules if r.limit_metric}
            self._rule_of = np.full(0, _UNDECIDED, dtype=np.int64)
            self._limits: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}  # (limit name, labels) → series id

    @property
    def active(self) -> bool:
        return self.settings.enabled and bool(self.settings.rules)

    # -- the pipeline's side -----------------------------------------------------------------------

    def observe(self, batch: MetricBatch) -> None:
        """Route series seen for the first time, then keep the history of the watched ones."""
        if not self.active or not len(batch):
            return
        sid = batch.series_id
        with self._lock:
            self._rule_of = grow_id_map(self._rule_of, int(sid.max()) + 1, _UNDECIDED)
            new = np.unique(sid[self._rule_of[sid] == _UNDECIDED])
            if len(new):
                self._route(new)
        self.history.observe(batch)

    def _route(self, sids: np.ndarray) -> None:
        """Pick each new series' rule (a loop over new series only); watch it, and limit series."""
        watch = []
        for s in sids.tolist():
            name, labels = self.registry.key(s)
            plain = dict(labels)
            rule = next((i for i, sel in enumerate(self._selectors) if sel.matches(name, plain)), _NONE)
            self._rule_of[s] = rule
            if rule != _NONE:
                watch.append(s)
            if name in self._limit_names:
                self._limits[(name, labels)] = s
                watch.append(s)
        if watch:
            self.history.watch(watch)

    # -- partitions (a Kafka worker) ---------------------------------------------------------------

    def series_state(self, series_ids: np.ndarray) -> dict[str, Any] | None:
        """The history of these series (a partition's), for its checkpoint; None when none is kept."""
        if not self.active:
            return None
        rows = self.history.rows(series_ids)
        return rows if len(rows["series"]) else None

    def load_series_state(self, state: dict[str, Any], series_ids: np.ndarray) -> int:
        """Restore a partition's history under this process's ids; returns the series restored.

        The series are routed at once, so the next run forecasts them before any new point arrives.
        Raises ValueError when the history was kept with another step or length.
        """
        if not self.active:
            return 0
        ids = np.asarray(series_ids, dtype=np.int64)
        with self._lock:
            if len(ids):
                self._rule_of = grow_id_map(self._rule_of, int(ids.max()) + 1, _UNDECIDED)
            new = np.unique(ids[self._rule_of[ids] == _UNDECIDED])
            if len(new):
                self._route(new)
        return self.history.load_rows(state, ids)

    def forget(self, series_ids: np.ndarray) -> None:
        """Stop forecasting these series (a revoked partition's): history, routing and pending verdicts go."""
        ids = np.asarray(series_ids, dtype=np.int64)
        with self._lock:
            self._generation += 1
            self.history.forget(ids)
            ids = ids[ids < len(self._rule_of)]
            self._rule_of[ids] = _UNDECIDED
            gone = set(ids.tolist())
            self._limits = {k: s for k, s in self._limits.items() if s not in gone}
            while True:  # verdicts already queued may name them; the next run repeats the rest
                try:
                    self.verdicts.get_nowait()
                except queue.Empty:
                    break

    # -- the forecast thread -----------------------------------------------------------------------

    def start(self) -> None:
        if not self.active:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="aiops-forecasts", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.settings.every_s):
            generation = self._generation
            try:
                verdicts = self.run_once()
            except Exception:  # a failed run is logged; the next one tries again
                log.exception("forecast run failed")
                continue
            with self._lock:  # `forget` bumps the generation and empties the queue under this lock too
                if generation != self._generation:  # partitions moved meanwhile: it may name series no longer ours
                    continue
                try:
                    self.verdicts.put_nowait(verdicts)
                except queue.Full:  # the pipeline is behind: the next run carries the news
                    log.warning("forecast verdicts dropped: the pipeline has not taken the last %d",
                                self.verdicts.maxsize)

    def run_once(self) -> Verdicts:
        """Forecast every watched series, store the forecasts, and say which are at risk."""
        now = self.clock()
        series, values, last_ts = self.history.matrix()
        with self._lock:
            rule_of = self._rule_of.copy()
            limits = dict(self._limits)
        if not len(series):
            return Verdicts([], [])
        row_of = {int(s): i for i, s in enumerate(series)}
        at_risk: list[AnomalyRecord] = []
        cleared: list[str] = []
        stored: list[dict[str, Any]] = []
        for r, rule in enumerate(self.settings.rules):  # a loop over rules; each forecasts all its series at once
            mine = [int(s) for s in series if int(s) < len(rule_of) and rule_of[int(s)] == r]
            if not mine:
                continue
            X = values[[row_of[s] for s in mine]]
            if rule.kind == "counter":
                X = _rates(X, self.history.step_s)
            horizon = max(int(np.ceil(rule.horizon_s / self.history.step_s)), 1)
            step = self.history.step_s
            if rule.method == "linear":
                window = max(int(round(rule.window_s / step)), 2)
                batch = predict_linear(X, horizon, step=step, last_ts=last_ts, window=window, level=self.settings.level,
                                       resets=rule.kind == "gauge")
            elif rule.method != "auto":
                batch = _library_batch(X, horizon, step, last_ts, self.settings.level, rule)
            else:
                batch = forecast_many(X, horizon, step=step, last_ts=last_ts, level=self.settings.level,
                                      resets=rule.kind == "gauge")
            threshold = self._thresholds(rule, mine, values, row_of, limits)
            earliest, likely, latest = crossing_times(batch, threshold[:, None], rule.direction)
            for i, s in enumerate(mine):
                key = self.registry.key(s)
                fp = fingerprint_of("predictive", key)
                risk = batch.status[i] == "ok" and np.isfinite(likely[i]) and likely[i] - now <= rule.lead_time_s
                stored.append(_row(s, now, batch, i, rule, threshold[i], earliest[i], likely[i], latest[i]))
                if not risk:
                    cleared.append(fp)
                    continue
                at_risk.append(self._record(s, key, X[i], batch, i, rule, threshold[i], now,
                                            earliest[i], likely[i], latest[i]))
        if stored:
            self._store(stored, now)
        return Verdicts(at_risk, cleared)

    def _store(self, rows: list[dict[str, Any]], now: float) -> None:
        """Replace the stored forecasts of these series (under the store's ids when processes share it)."""
        shared = self.shared_series
        with shared.kept_if_stored() if shared is not None else nullcontext(), self.store.begin() as conn:
            if shared is not None:
                ids = shared.resolve_ids(conn, [row["series_id"] for row in rows], now)
                rows = [{**row, "series_id": sid} for row, sid in zip(rows, ids)]
            conn.execute(delete(forecasts).where(forecasts.c.series_id.in_([row["series_id"] for row in rows])))
            conn.execute(insert(forecasts), rows)

    def _thresholds(self, rule: ForecastRule, mine: list[int], values: np.ndarray, row_of: dict[int, int],
                    limits: dict) -> np.ndarray:
        if rule.threshold is not None:
            return np.full(len(mine), rule.threshold)
        out = np.full(len(mine), np.nan)
        for i, s in enumerate(mine):  # a loop over this rule's series to find each one's limit series
            _, labels = self.registry.key(s)
            limit = limits.get((rule.limit_metric, labels))
            if limit is not None and limit in row_of:
                out[i] = _last_finite(values[row_of[limit]])
        return out

    def _record(self, s: int, key, x: np.ndarray, batch, i: int, rule: ForecastRule, threshold: float, now: float,
                earliest: float, likely: float, latest: float) -> AnomalyRecord:
        soon = np.isfinite(latest) and latest - now <= rule.lead_time_s  # even the near bound crosses in time
        at = int(np.clip(np.searchsorted(batch.ts, likely), 0, len(batch.ts) - 1))
        forecast = {
            "threshold": float(threshold), "direction": rule.direction, "at": now,
            "earliest": float(earliest), "likely": float(likely), "latest": float(latest) if np.isfinite(latest) else None,
            "model": batch.model[i], "backtest_error": _finite(batch.backtest_error[i]), "level": batch.level,
            "lead_time_s": rule.lead_time_s,
        }
        return AnomalyRecord(
            series_id=s, key=key, ts=now, value=_finite(_last_finite(x)), expected=_finite(batch.yhat[i, at]),
            lower=_finite(batch.lower[i, at]), upper=_finite(batch.upper[i, at]), score=1.0 if soon else 0.7,
            severity="critical" if soon else "warning", detector="forecast",
            explanation={"detectors": {"forecast": 1.0}, "forecast": forecast}, alert_kind="predictive",
        )


def _library_batch(X: np.ndarray, horizon: int, step: float, last_ts: float, level: float, rule: ForecastRule):
    """A library model (Holt-Winters, ETS, Prophet) fitted to each series: a loop over series, as
    those models fit one series at a time; meant for the few series a rule names it for, off the ingest path."""
    ts = last_ts - step * np.arange(X.shape[1] - 1, -1, -1)
    rows = [forecast(x, horizon, ts=ts, step=step, model=rule.method, level=level, resets=rule.kind == "gauge")
            for x in X]
    first = rows[0]
    return ForecastBatch(
        first.ts, np.vstack([r.yhat for r in rows]), np.vstack([r.lower for r in rows]), np.vstack([r.upper for r in rows]),
        [r.model for r in rows], np.array([r.backtest_error for r in rows]), level,
        [r.status for r in rows], [r.reason for r in rows],
    )


def _rates(X: np.ndarray, step: float) -> np.ndarray:
    """Per-second rates of counters kept as bucket means; a drop (a reset) leaves a gap."""
    rates = np.full_like(X, np.nan)
    rates[:, 1:] = np.diff(X, axis=1) / step
    rates[rates < 0] = np.nan
    return rates


def _last_finite(row: np.ndarray) -> float:
    finite = np.flatnonzero(np.isfinite(row))
    return float(row[finite[-1]]) if len(finite) else float("nan")


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _row(s: int, now: float, batch, i: int, rule: ForecastRule, threshold: float, earliest, likely, latest) -> dict:
    clean = lambda a: [None if not np.isfinite(v) else float(v) for v in a]  # noqa: E731 (JSON has no NaN)
    return {
        "series_id": s, "created_at": now, "status": batch.status[i], "reason": batch.reason[i][:256],
        "model": batch.model[i], "backtest_error": _finite(batch.backtest_error[i]), "level": batch.level,
        "kind": rule.kind, "ts": batch.ts.tolist(), "yhat": clean(batch.yhat[i]), "lower": clean(batch.lower[i]),
        "upper": clean(batch.upper[i]), "threshold": _finite(threshold), "direction": rule.direction,
        "earliest": _finite(earliest), "likely": _finite(likely), "latest": _finite(latest),
    }
