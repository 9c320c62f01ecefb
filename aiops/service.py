"""The service's parts, built from settings and wired together; the API and the CLI start it."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from aiops.alerts import AlertManager
from aiops.config_loader import load_settings
from aiops.detection import DetectionRouter, ReconfigureReport
from aiops.entities import EntityMonitor
from aiops.escalation import Escalations
from aiops.executions import Planner
from aiops.executor import Executor
from aiops.forecasts import ForecastService
from aiops.incidents import IncidentManager
from aiops.loganomalies import LogAnomalies
from aiops.notifier import Notifier
from aiops.outbox import Outbox
from aiops.receivers import Receivers
from aiops.remediation_hooks import ServiceHooks
from aiops.silences import SilenceBook
from aiops.partitioning import SeriesPartitioner
from aiops.pipeline import Pipeline
from aiops.shared_series import StoreSeries
from aiops.settings import Settings
from aiops.store import ListQuery, StoreEngine, repository
from aiops.telemetry import Telemetry
from aiops.topology import ServiceMap
from aiops.traces import TraceMonitor, with_trace_rules
from ingest.bus import InProcessBus
from ingest.otlp import OtlpMetricsDecoder
from ingest.otlp_logs import OtlpLogsDecoder
from ingest.otlp_traces import OtlpTracesDecoder
from ingest.points import PointDecoder
from ingest.registry import SeriesRegistry

__all__ = ["ReloadResult", "Service", "topic_partitions"]

_LIVE_SECTIONS = ("detection", "alerting", "remediation", "forecasting")  # what a reload applies; the rest needs a restart


@dataclass(frozen=True)
class ReloadResult:
    report: ReconfigureReport
    restart_required: list[str]  # changed sections that only a restart applies

log = logging.getLogger(__name__)


def topic_partitions(kafka) -> dict[str, int]:
    """The topics a Kafka deployment uses and their partitions (all but the dead letters: `kafka.partitions`)."""
    t = kafka.topics
    topics = {name: kafka.partitions for name in (t.metrics, t.logs, t.spans, t.spans_by_service)}
    topics[t.dead_letter] = 1
    topics.update({name: kafka.partitions for name in (t.anomalies, t.alerts) if name})
    return topics


class Service:
    """Store, bus, registry, decoder, detector and pipeline of one process.

    Construction connects nothing; `start()` migrates the store, restores the series registry and
    the firing alerts, and starts the pipeline. `ready` is True only between `start` and `stop`.
    """

    def __init__(
        self,
        settings: Settings,
        clock: Callable[[], float] = time.time,
        config_path: str | Path | None = None,
        connector_seams: dict[str, Any] | None = None,
        role: Literal["service", "worker"] = "service",
    ) -> None:
        self.settings = settings
        self.role = role
        self.api_only = role == "service" and settings.server.mode == "api-only"
        self.producer = None  # api-only: the MetricProducer ingest publishes to, made by `start`
        self.log_producer = None  # api-only with logs enabled: the LogProducer POST /v1/logs publishes to
        self.span_producer = None  # api-only with traces enabled: the SpanProducer POST /v1/traces publishes to
        self.clock = clock
        self._map_read_at = float("-inf")  # when the traced service map was last read from the store
        self.config_path = config_path
        self._reload_lock = threading.Lock()
        self.telemetry = Telemetry()
        self.store = StoreEngine(settings.store_url, echo=settings.store.echo)
        self.bus = InProcessBus(settings.bus.queue_batches)
        self.registry = SeriesRegistry(max_series=settings.ingest.max_series)
        self.decoder = PointDecoder(self.registry, max_future_skew_s=settings.ingest.max_future_skew_s)
        self.otlp_decoder = OtlpMetricsDecoder(self.registry, max_future_skew_s=settings.ingest.max_future_skew_s)
        self.otlp_logs_decoder = OtlpLogsDecoder(max_future_skew_s=settings.ingest.max_future_skew_s)
        self.logs = None  # its own point decoder: the pipeline thread uses it too (intervals closed when logs go quiet)
        if settings.logs.enabled:
            skew = settings.ingest.max_future_skew_s
            self.logs = LogAnomalies(settings.logs, self.registry, PointDecoder(self.registry, max_future_skew_s=skew))
        self.otlp_traces_decoder = OtlpTracesDecoder(max_future_skew_s=settings.ingest.max_future_skew_s)
        self.service_map = ServiceMap(settings.alerting.incidents.topology)
        self.traces = TraceMonitor(settings.traces, self.registry, self.service_map,
                                   save_every_s=settings.detection.checkpoint_every_s)
        self.detection = DetectionRouter(with_trace_rules(settings.detection, settings.traces), settings.alerting,
                                         self.registry)
        self.silences = SilenceBook(settings.alerting.silences, settings.alerting.maintenance)
        self.incidents = IncidentManager(settings.alerting.incidents, Escalations(settings.alerting.escalation),
                                         topology=self.service_map.adjacency)
        self._seams = connector_seams or {}  # tests pass sleep/rng so retries do not wait
        self.outbox = Outbox(
            self.store, Receivers(settings.alerting.receivers, **self._seams), clock=clock,
            on_outcome=lambda receiver, outcome: self.telemetry.notifications.labels(receiver=receiver, outcome=outcome).inc(),
        )
        self.notifier = Notifier(settings, self.incidents, self.outbox)
        self.planner = Planner(settings.remediation)
        # Kafka: the api-only producer and the workers place series alike (entity features by entity)
        self.partitioner = SeriesPartitioner(settings.detection.entities)
        worker = role == "worker"  # a Kafka worker: series shared with other processes, state per partition
        self.forecasts = ForecastService(settings.forecasting, self.registry, self.store, clock=clock,
                                         shared_series=StoreSeries(self.registry) if worker else None)
        self.executor = Executor(self.store, settings, ServiceHooks(self.incidents, self.notifier), clock=clock,
                                 jenkins=None)
        self.pipeline = Pipeline(
            bus=self.bus,
            registry=self.registry,
            detection=self.detection,
            entities=EntityMonitor(settings.detection.entities, self.registry),  # a worker: its partitions' entities
            incidents=self.incidents,
            notifier=self.notifier,
            planner=self.planner,
            forecasts=self.forecasts,  # a worker forecasts the series of its partitions (aiops.partition_state)
            logs=None if worker else self.logs,
            checkpoint_every_s=0.0 if worker else settings.detection.checkpoint_every_s,
            shared_series=StoreSeries(self.registry) if worker else None,
            alerts=AlertManager(
                settings.alerting.resolve_after_s,
                self.silences,
                flap_opens=settings.alerting.flap_opens,
                flap_window_s=settings.alerting.flap_window_s,
                flap_hold=settings.alerting.flap_hold,
                inhibit=settings.alerting.inhibit,
                shared=worker,
            ),
            store=self.store,
            telemetry=self.telemetry,
            clock=clock,
        )
        self.pipeline.alerts.predictive_quiet_s = 3 * settings.forecasting.every_s
        self.telemetry.watch(lambda: self.bus.depth("metrics"), lambda: len(self.registry))
        self._started = False

    @property
    def ready(self) -> bool:
        return self._started and (self.api_only or self.pipeline.running)

    def start(self) -> None:
        self.store.migrate()
        with self.store.begin() as conn:
            if not self.api_only:  # api-only: ids only name series on their way to Kafka
                self.registry.load(repository.load_series(conn))
            self._load_silences(conn)
        self.refresh_service_map()
        if self.api_only:
            self._start_producer()
        else:
            self.pipeline.start()
            self.outbox.start()
            self.forecasts.start()
        if self.settings.remediation.executor:
            self.executor.start()
        self._started = True
        log.info("service started", extra={"store": self.store.dialect, "series": len(self.registry)})

    def _load_silences(self, conn) -> None:
        for row in repository.list_silences(conn, ListQuery(limit=100_000)).items:
            self.silences.put(row["id"], row["selector"], row["starts_at"], row["ends_at"], row["comment"])

    def _start_producer(self) -> None:
        from ingest.kafka_bus import MetricProducer, create_topics

        k = self.settings.kafka
        if k.create_topics:
            create_topics(k.bootstrap, topic_partitions(k))
        self.producer = MetricProducer(
            k.bootstrap, k.topics.metrics, self.registry,
            compression=k.compression_type,
            max_block_ms=int(self.settings.server.ingest_wait_s * 1000), partition_key=self.partitioner,
        )
        if self.logs is not None:
            from ingest.kafka_logs import LogProducer

            self.log_producer = LogProducer(
                k.bootstrap, k.topics.logs, compression=k.compression_type,
                max_block_ms=int(self.settings.server.ingest_wait_s * 1000),
            )
        if self.settings.traces.enabled:
            from ingest.kafka_spans import SpanProducer

            self.span_producer = SpanProducer(
                k.bootstrap, k.topics.spans, by="trace", compression=k.compression_type,
                max_block_ms=int(self.settings.server.ingest_wait_s * 1000),
            )

    def start_worker(self) -> None:
        """For `aiops worker`: the store, silences, alert caches, outbox and forecast thread; detection is
        driven by aiops.worker.

        The service map they group incidents by is merged from the parts the workers' span partitions
        save (aiops.partition_traces) and re-read (`refresh_service_map`).
        """
        self.store.migrate()
        with self.store.begin() as conn:
            self._load_silences(conn)
            self.notifier.seed(repository.firing_alerts(conn), self.clock())
        self.refresh_service_map()
        self.outbox.start()
        if self.forecasts.active and any(r.limit_metric for r in self.settings.forecasting.rules):
            log.warning("forecast rules with limit_metric find a limit only when its series lands on a partition "
                        "this worker owns (docs/scaling.md); prefer a fixed threshold in the Kafka mode")
        self.forecasts.start()
        self._started = True

    def refresh_service_map(self, max_age_s: float = 0.0) -> None:
        """Re-read the traced service map the processes taking spans save to the store (unless read
        less than `max_age_s` ago)."""
        now = self.clock()
        if now - self._map_read_at < max_age_s:
            return
        with self.store.begin() as conn:
            self.traces.load(conn, now, parts=True)
        self._map_read_at = now

    def stop_worker(self) -> None:
        self._started = False
        self.forecasts.stop()
        self.outbox.stop()
        self.store.close()

    def start_executor_only(self) -> None:
        """For `aiops executor`: the store, incidents and outbox the executor needs, no pipeline or API."""
        self.store.migrate()
        with self.store.begin() as conn:
            self.incidents.load(conn)
        self.outbox.start()
        self.executor.start()

    def stop_executor_only(self) -> None:
        self.executor.stop()
        self.outbox.stop()
        self.store.close()

    def stop(self) -> None:
        self._started = False
        self.executor.stop()
        if self.producer is not None:
            for producer in (self.producer, self.log_producer, self.span_producer):
                if producer is not None:
                    producer.flush()
                    producer.close()
        else:
            self.forecasts.stop()
            self.pipeline.stop(drain=True)
        if not self.api_only:  # api-only: the workers save the map, in parts
            with self.store.begin() as conn:
                self.traces.save(conn, self.clock())
        self.outbox.stop()
        self.store.close()

    def reload(self) -> ReloadResult:
        """Re-read the settings file and apply its detection and alerting sections live.

        Raises ConfigError (nothing applied) when the file is invalid. Detectors whose spec did not
        change keep their learned state; sections other than detection and alerting are reported
        in `restart_required` when they differ, and are not applied.
        """
        with self._reload_lock:
            new = load_settings(self.config_path)
            report = self.detection.reconfigure(with_trace_rules(new.detection, self.settings.traces), new.alerting)
            entities_changed = new.detection.entities != self.settings.detection.entities
            if entities_changed:  # entity models start afresh
                self.pipeline.entities = EntityMonitor(new.detection.entities, self.registry)
            alerts = self.pipeline.alerts
            alerts.resolve_after_s = new.alerting.resolve_after_s
            alerts.flap_opens, alerts.flap_window_s = new.alerting.flap_opens, new.alerting.flap_window_s
            alerts.flap_hold = new.alerting.flap_hold
            self.silences.configure(new.alerting.silences, new.alerting.maintenance)
            alerts.configure_inhibition(new.alerting.inhibit)
            self.service_map.configure(new.alerting.incidents.topology)
            self.incidents.configure(new.alerting.incidents)
            self.incidents.escalations = Escalations(new.alerting.escalation)
            if new.alerting.receivers != self.settings.alerting.receivers:
                self.outbox.receivers = Receivers(new.alerting.receivers, **self._seams)
            self.notifier.configure(new)
            self.planner.configure(new.remediation)
            if new.forecasting != self.settings.forecasting:
                self.forecasts.stop()
                self.forecasts.configure(new.forecasting)
                self.forecasts.start()
                alerts.predictive_quiet_s = 3 * new.forecasting.every_s
            self.executor.configure(new)
            restart = [
                name for name in type(new).model_fields
                if name not in _LIVE_SECTIONS and getattr(new, name) != getattr(self.settings, name)
            ]
            if entities_changed and self.api_only:  # the producer keeps placing series by the old rules
                restart.append("detection.entities")
            self.settings = self.settings.model_copy(update={name: getattr(new, name) for name in _LIVE_SECTIONS})
        log.info("settings reloaded", extra={"restart_required": restart, **vars(report)})
        return ReloadResult(report, restart)
