"""The service's own metrics, in a registry of their own (served at GET /metrics)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["Telemetry"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Telemetry:
    """Counters and histograms of ingest, detection and alerting; one instance per service."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.ingest_requests = Counter(
            "aiops_ingest_requests", "Ingest requests by HTTP status", ["status"], registry=r
        )
        self.points_accepted = Counter("aiops_ingest_points_accepted", "Points accepted into the pipeline", registry=r)
        self.points_rejected = Counter(
            "aiops_ingest_points_rejected", "Points rejected at ingest, by offending field", ["field"], registry=r
        )
        self.spans_accepted = Counter("aiops_ingest_spans_accepted", "Spans accepted at POST /v1/traces", registry=r)
        self.spans_rejected = Counter(
            "aiops_ingest_spans_rejected", "Spans rejected at POST /v1/traces, by offending field", ["field"], registry=r
        )
        self.points_processed = Counter("aiops_pipeline_points", "Points scored by the detectors", registry=r)
        self.anomalies = Counter("aiops_anomalies", "Anomalies found, by severity", ["severity"], registry=r)
        self.alert_events = Counter(
            "aiops_alert_events", "Alert lifecycle events (opened, updated, resolved)", ["event"], registry=r
        )
        self.latency = Histogram(
            "aiops_pipeline_latency_seconds",
            "From receipt of a batch to its anomalies and alerts being stored",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_seconds = Histogram(
            "aiops_pipeline_batch_seconds", "Time to score and store one coalesced batch", buckets=_LATENCY_BUCKETS, registry=r
        )
        self.queue_depth = Gauge("aiops_bus_queue_depth", "Batches waiting on the bus", ["topic"], registry=r)
        self.series = Gauge("aiops_series", "Series known to the registry", registry=r)
        self.pipeline_errors = Counter("aiops_pipeline_errors", "Batches whose processing failed", registry=r)
        self.log_records = Counter(
            "aiops_ingest_log_records", "OTLP log records received, by outcome (accepted: mined and counted)",
            ["outcome"], registry=r,
        )
        self.notifications = Counter(
            "aiops_notifications", "Notification deliveries by receiver and outcome (sent, retry, failed)",
            ["receiver", "outcome"], registry=r,
        )

    def watch(self, queue_depth: Callable[[], int], series_count: Callable[[], int], topic: str = "metrics") -> None:
        """Read the gauges from live objects at scrape time."""
        self.queue_depth.labels(topic=topic).set_function(queue_depth)
        self.series.set_function(series_count)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
