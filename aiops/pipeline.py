"""The pipeline: takes batches off the bus, scores them, and stores anomalies and alerts.

It runs in a thread of its own so that detection never blocks the API's event loop. Batches waiting
on the bus are coalesced (up to `max_coalesce`) so a busy pipeline scores larger arrays, which is
where vectorized detectors are fastest. Everything one batch produces (new series, anomalies, alert
changes, audit entries) is written in one transaction, so a failure leaves no half-written batch.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from aiops.alerts import AlertEvent, AlertManager, AnomalyRecord
from aiops.detection import Detection, DetectionRouter
from aiops.entities import EntityMonitor
from aiops.executions import Planner
from aiops.forecasts import ForecastService
from aiops.incidents import IncidentManager
from aiops.loganomalies import CHECKPOINT_NAME as LOG_CHECKPOINT, LogAnomalies
from aiops.notifier import Notifier
from aiops.store import StoreEngine, repository
from aiops.telemetry import Telemetry
from aiops.watches import WatchKeeper
from detectors import SEVERITIES, MetricBatch
from detectors.checkpoint import CheckpointError, pack, unpack
from ingest.bus import Bus
from ingest.registry import SeriesRegistry

__all__ = ["CHECKPOINT_NAME", "IngestItem", "OnPersist", "Pipeline", "METRICS_TOPIC", "SharedSeries"]

log = logging.getLogger(__name__)

METRICS_TOPIC = "metrics"
CHECKPOINT_NAME = "detection"
HISTORY_CHECKPOINT = "forecast-history"


@dataclass(frozen=True, slots=True)
class IngestItem:
    """What ingest puts on the bus: a batch and when it was received (for the latency histogram)."""

    batch: MetricBatch
    received_at: float


OnPersist = Callable[[object, list[AnomalyRecord], list[int], list[AlertEvent]], None]


class SharedSeries(Protocol):
    """Store ids for series when several processes write the `series` table (aiops.shared_series)."""

    def resolve(self, conn, records: list[AnomalyRecord], now: float) -> list[AnomalyRecord]: ...

    def local_ids(self, conn, store_ids: np.ndarray) -> np.ndarray: ...

    def kept_if_stored(self) -> AbstractContextManager[None]: ...


class Pipeline:
    def __init__(
        self,
        *,
        bus: Bus,
        registry: SeriesRegistry,
        detection: DetectionRouter,
        entities: EntityMonitor | None = None,
        alerts: AlertManager,
        incidents: IncidentManager | None = None,
        notifier: Notifier | None = None,
        planner: Planner | None = None,
        forecasts: ForecastService | None = None,
        logs: LogAnomalies | None = None,
        store: StoreEngine,
        telemetry: Telemetry,
        clock: Callable[[], float] = time.time,
        max_coalesce: int = 64,
        housekeeping_every_s: float = 1.0,
        checkpoint_every_s: float = 300.0,
        shared_series: SharedSeries | None = None,
    ) -> None:
        self.bus = bus
        self.registry = registry
        self.detection = detection
        self.entities = entities
        self.incidents = incidents
        self.notifier = notifier
        self.planner = planner
        self.forecasts = forecasts
        self.logs = logs
        # what adds template and examples to anomalies on log series: the miner here, or (a Kafka worker,
        # whose logs are mined per partition) aiops.partition_logs.PartitionLogs, set by aiops.worker
        self.log_context = logs
        # called inside the transaction of effects found on the tick (predictive alerts, resolutions), as
        # `on_persist` is for `process`: a Kafka worker publishes their events (set by aiops.worker)
        self.on_housekeeping: OnPersist | None = None
        self.watches = WatchKeeper(shared_series.local_ids if shared_series is not None else None)
        self.alerts = alerts
        self.store = store
        self.telemetry = telemetry
        self.clock = clock
        self.max_coalesce = max_coalesce
        self.housekeeping_every_s = housekeeping_every_s
        self.checkpoint_every_s = checkpoint_every_s
        self.shared_series = shared_series  # None: registry ids are the store's (one process writes series)
        self._last_checkpoint = clock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_housekeeping = 0.0

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        with self.store.begin() as conn:
            self._load_caches(conn)
            saved = repository.load_checkpoint(conn, CHECKPOINT_NAME)
            history = repository.load_checkpoint(conn, HISTORY_CHECKPOINT) if self.forecasts is not None else None
            templates = repository.load_checkpoint(conn, LOG_CHECKPOINT) if self.logs is not None else None
            if self.notifier is not None:
                self.notifier.seed(repository.firing_alerts(conn), self.clock())
        if saved is not None:
            self._restore(*saved)
        if history is not None:
            try:
                self.forecasts.history.load_state_dict(unpack(history[0]))
            except (CheckpointError, ValueError, KeyError) as exc:  # another step or length now: start afresh
                log.warning("forecast history not restored: %s", exc)
        if templates is not None:
            try:
                self.logs.load_state_dict(json.loads(templates[0]))
            except (ValueError, KeyError, TypeError) as exc:  # an old or damaged table: mine afresh
                log.warning("log templates not restored: %s", exc)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="aiops-pipeline", daemon=True)
        self._thread.start()

    def stop(self, drain: bool = True, timeout: float = 10.0) -> None:
        """Stop the thread; with `drain`, first process what is already on the bus."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if drain:
            while self.run_once(timeout=0.0):
                pass
        self.checkpoint()

    def checkpoint(self) -> None:
        """Save what the detectors learned, so a restart resumes warm instead of warming up again."""
        now = self.clock()
        data = pack(self.detection.state_dict())
        with self.store.begin() as conn:
            repository.save_checkpoint(conn, CHECKPOINT_NAME, data, now)
            if self.forecasts is not None and len(self.forecasts.history):
                repository.save_checkpoint(conn, HISTORY_CHECKPOINT, pack(self.forecasts.history.state_dict()), now)
            if self.logs is not None:
                repository.save_checkpoint(conn, LOG_CHECKPOINT, json.dumps(self.logs.state_dict()).encode(), now)
        self._last_checkpoint = now
        log.info("detector state saved", extra={"bytes": len(data)})

    def _restore(self, data: bytes, saved_at: float) -> None:
        try:
            restored = self.detection.load_state_dict(unpack(data))
        except (CheckpointError, ValueError, KeyError) as exc:  # an old or damaged checkpoint: start cold
            log.warning("detector state not restored: %s", exc)
            return
        log.info("detector state restored", extra={"detectors": restored, "saved_at": saved_at})

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once(timeout=0.2)
            except Exception:  # keep the pipeline alive; the failure is counted and logged
                self.telemetry.pipeline_errors.inc()
                log.exception("pipeline batch failed")
                time.sleep(0.5)

    def run_once(self, timeout: float) -> int:
        """Process what the bus holds (waiting up to `timeout` for it); returns the points scored."""
        items = self.bus.consume(METRICS_TOPIC, self.max_coalesce, timeout)
        now = self.clock()
        self.tick(now)
        if not items:
            return 0
        return self.process(items, now)

    def process(
        self,
        items: list[IngestItem],
        now: float,
        *,
        stored: np.ndarray | None = None,
        on_persist: OnPersist | None = None,
    ) -> int:
        """Score `items` and persist what they produce; returns the points scored.

        The Kafka worker calls this directly. `stored` marks points (of the concatenated batch) whose
        effects a previous run already persisted: they still update the detectors, their anomalies are
        not written again. `on_persist(conn, records, alert_ids, events)` runs inside the transaction
        that stores the effects, after everything else is written.
        """
        started = time.perf_counter()
        batch = MetricBatch.concat([item.batch for item in items])
        found = self.detection.update(batch)
        records = self._records(batch, found, stored)
        if self.log_context is not None and records:
            records = self.log_context.enrich(records)  # anomalies on log series carry their template and examples
        self.watches.observe(self.store.begin, batch, found.values, found.scores.score, found.scores.ready)
        if self.forecasts is not None:
            self.forecasts.observe(batch)
        if self.entities is not None:
            self.entities.observe(batch)
        self._persist(records, now, on_persist)
        self.telemetry.points_processed.inc(len(batch))
        done = self.clock()
        for item in items:
            self.telemetry.latency.observe(max(0.0, done - item.received_at))
        self.telemetry.batch_seconds.observe(time.perf_counter() - started)
        return len(batch)

    def tick(self, now: float) -> None:
        """Housekeeping when due: quiet alerts resolve, notifications go out, checkpoints are saved."""
        if now - self._last_housekeeping >= self.housekeeping_every_s:
            self._housekeeping(now)

    def _records(self, batch: MetricBatch, found: Detection, stored: np.ndarray | None = None) -> list[AnomalyRecord]:
        scores = found.scores
        records = []
        for i in sorted(found.explanations):  # anomalies are rare: this loop runs over them, not over points
            if stored is not None and stored[i]:
                continue
            sid = int(batch.series_id[i])
            records.append(
                AnomalyRecord(
                    series_id=sid,
                    key=self.registry.key(sid),
                    ts=float(batch.ts[i]),
                    value=float(found.values[i]),
                    expected=_opt(scores.expected[i]),
                    lower=_opt(scores.lower[i]),
                    upper=_opt(scores.upper[i]),
                    score=float(scores.score[i]),
                    severity=SEVERITIES[found.severity[i]],
                    detector=found.detector_names[i],
                    explanation=found.explanations[i],
                )
            )
        return records

    def persist(self, records: list[AnomalyRecord], now: float, on_persist: OnPersist | None = None) -> None:
        """Store anomalies found outside `process` (a Kafka worker's new log templates), as `process` would."""
        self._persist(records, now, on_persist)

    def _persist(self, records: list[AnomalyRecord], now: float, on_persist: OnPersist | None = None) -> None:
        new_series = self.registry.drain_new()
        if self.shared_series is not None:
            new_series = []  # local ids are not the store's: `shared_series` maps the records' series
        if not new_series and not records:
            return
        shared = self.shared_series
        try:
            with shared.kept_if_stored() if shared is not None else nullcontext(), self.store.begin() as conn:
                if shared is not None:
                    records = shared.resolve(conn, records, now)
                repository.insert_series(conn, new_series, now)
                alert_ids, events = self.alerts.observe(conn, records, now)
                repository.insert_anomalies(
                    conn,
                    [  # predictive records are alerts' news, not anomalous points
                        {
                            "series_id": r.series_id,
                            "ts": r.ts,
                            "value": r.value,
                            "expected": r.expected,
                            "lower": r.lower,
                            "upper": r.upper,
                            "score": r.score,
                            "severity": r.severity,
                            "detector": r.detector,
                            "explanation": r.explanation,
                            "alert_id": alert_id,
                            "created_at": now,
                        }
                        for r, alert_id in zip(records, alert_ids)
                        if r.alert_kind != "predictive"
                    ],
                )
                repository.append_audit(conn, [_audit(e, now) for e in events if e.event == "opened"])
                if self.incidents is not None:
                    self.incidents.apply(conn, events, now)
                if self.planner is not None:
                    self.planner.plan(conn, events, now)  # runbooks for the alerts that opened
                if on_persist is not None:
                    on_persist(conn, records, alert_ids, events)
        except Exception:
            self.registry.requeue_new(new_series)
            with self.store.begin() as conn:
                self._load_caches(conn)  # the caches may hold changes that were rolled back
            raise
        for r in records:
            self.telemetry.anomalies.labels(severity=r.severity).inc()
        self._note(events)
        if self.notifier is not None:
            self.notifier.observe(events, now)  # after the commit: groups only hear of what is stored

    def _housekeeping(self, now: float) -> None:
        self._last_housekeeping = now
        if self.planner is not None and self.planner.runbooks:
            with self.store.begin() as conn:
                self.watches.refresh(conn)  # executions waiting to see their series normal again
        if self.checkpoint_every_s and now - self._last_checkpoint >= self.checkpoint_every_s:
            self.checkpoint()
        if self.entities is not None and self.entities.enabled:
            entity_anomalies = self.entities.tick(now)
            if entity_anomalies:  # a Kafka worker publishes their alert events (on_housekeeping)
                self._persist(entity_anomalies, now, self.on_housekeeping)
        if self.forecasts is not None:
            self._take_verdicts(now)
        if self.logs is not None:
            self._take_logs(now)
        if self.alerts.firing_count:
            self._resolve(lambda conn: self.alerts.resolve_quiet(conn, now), now)
        if self.notifier is not None and self.notifier.active:
            with self.store.begin() as conn:
                self.notifier.tick(conn, now)

    def _take_logs(self, now: float) -> None:
        """New log templates become anomalies; counts of intervals left open by silent sources go on the bus."""
        new_templates = self.logs.take()
        if new_templates:
            self._persist(new_templates, now)
        points = self.logs.tick(now)
        if points:
            batch = self.logs.batch(points, now)
            if len(batch) and not self.bus.try_publish(METRICS_TOPIC, IngestItem(batch, now)):
                self.logs.requeue(points)  # the bus is full: the next request or tick sends them

    def _take_verdicts(self, now: float) -> None:
        """Predictive alerts from the forecast thread's runs: open or update those at risk, resolve the rest."""
        while True:
            try:
                verdicts = self.forecasts.verdicts.get_nowait()
            except queue.Empty:
                return
            if verdicts.at_risk:
                self._persist(verdicts.at_risk, now, self.on_housekeeping)
            firing = self.alerts.firing_fingerprints("predictive")
            gone = [fp for fp in verdicts.cleared if fp in firing]
            if gone:
                self._resolve(lambda conn: self.alerts.resolve(conn, gone, now), now)

    def _resolve(self, resolve, now: float) -> None:
        """Resolve alerts (`resolve(conn)` says which) with their audit, incidents and notifications."""
        with self.store.begin() as conn:
            events = resolve(conn)
            repository.append_audit(conn, [_audit(e, now) for e in events])
            if self.incidents is not None:
                self.incidents.apply(conn, events, now)
            if self.on_housekeeping is not None and events:
                self.on_housekeeping(conn, [], [], events)
        self._note(events)
        if self.notifier is not None:
            self.notifier.observe(events, now)

    def _load_caches(self, conn) -> None:
        self.alerts.load(conn)
        if self.incidents is not None:
            self.incidents.load(conn)

    def _note(self, events: list[AlertEvent]) -> None:
        for e in events:
            self.telemetry.alert_events.labels(event=e.event).inc()
            if e.event != "updated":
                log.info("alert %s: %s", e.event, e.summary, extra={"alert_id": e.alert_id, "severity": e.severity})


def _opt(x: float) -> float | None:
    return None if np.isnan(x) else float(x)


def _audit(e: AlertEvent, now: float) -> dict:
    return {
        "ts": now,
        "actor": "pipeline",
        "action": f"alert.{e.event}",
        "subject": f"alert:{e.alert_id}",
        "detail": {
            "fingerprint": e.fingerprint,
            "severity": e.severity,
            "summary": e.summary,
            "silenced_by": e.silenced_by,
            "flapping": e.flapping,
        },
    }
