"""Settings: one YAML file plus `AIOPS_*` environment overrides, validated strictly with pydantic.

Every section is a model with `extra="forbid"`, so a misspelt key is an error rather than a silently
ignored setting. Loading goes through `aiops.config_loader`, which turns validation errors into
messages naming the file, the line and the field path.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from aiops.matchers import SelectorError, parse_selector
from connectors.jenkins import JenkinsConfig
from connectors.pagerduty import PagerDutyConfig
from connectors.slack import SlackConfig
from connectors.webhook import WebhookConfig
from detectors.registry import DetectorNotFound, default_registry
from remediation.runbook import Runbook

__all__ = [
    "AlertingSettings",
    "BusSettings",
    "DemoSettings",
    "DetectionRule",
    "DetectionSettings",
    "DetectorSpec",
    "EscalationPolicy",
    "EscalationStep",
    "EntityRule",
    "ForecastRule",
    "ForecastingSettings",
    "IncidentSettings",
    "IngestSettings",
    "InhibitRule",
    "KafkaMapping",
    "KafkaSettings",
    "KafkaTopics",
    "MaintenanceWindow",
    "ReceiverSpec",
    "RemediationSettings",
    "LogSettings",
    "LoggingSettings",
    "ServerSettings",
    "SilenceSpec",
    "Route",
    "Settings",
    "StoreSettings",
    "TracesSettings",
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024, description="larger request bodies get 413")
    ingest_wait_s: float = Field(
        2.0, ge=0, description="how long an ingest request waits for room on a full bus before 503"
    )
    public_url: str = Field(
        "http://127.0.0.1:8080", pattern=r"^https?://", description="how people reach this service: links in notifications"
    )
    mode: Literal["all-in-one", "api-only"] = Field(
        "all-in-one", description="api-only: ingest produces to Kafka (kafka section) and `aiops worker`s detect"
    )


class LoggingSettings(_Section):
    format: Literal["text", "json"] = "text"
    level: Literal["debug", "info", "warning", "error"] = "info"


class StoreSettings(_Section):
    url: str | None = Field(None, description="SQLAlchemy URL; default: an SQLite file in data_dir")
    echo: bool = False


class BusSettings(_Section):
    kind: Literal["inprocess"] = "inprocess"
    queue_batches: int = Field(256, ge=1, description="batches a topic holds before publishers wait")


class KafkaTopics(_Section):
    metrics: str = Field("aiops.metrics", min_length=1, description="our metric records (ingest/kafka_codec.py)")
    logs: str = Field("aiops.logs", min_length=1, description="log records, keyed by log source (ingest/kafka_logs.py)")
    spans: str = Field("aiops.spans", min_length=1, description="raw spans, partitioned by trace id (ingest/kafka_spans.py)")
    spans_by_service: str = Field("aiops.spans.by-service", min_length=1,
                                  description="spans with their caller resolved, partitioned by service")
    dead_letter: str = Field("aiops.dead-letter", min_length=1, description="records that could not be read")
    anomalies: str | None = Field("aiops.anomalies", description="anomalies as JSON, after they are stored; null: off")
    alerts: str | None = Field("aiops.alerts", description="alert events as JSON, after they are stored; null: off")


class KafkaMapping(_Section):
    """How to read JSON telemetry another team already puts on a topic: dotted paths into each point.

    A message is one JSON object or a list of them; `points` (a path) may name a list inside it.
    """

    topic: str = Field(min_length=1)
    points: str | None = Field(None, description="path of the list of points in a message; none: the message is one point or a list")
    name: str = Field(description='path of the metric name, e.g. "metric.name"; or a literal as "=cpu_usage"')
    labels: str | None = Field(None, description="path of an object of string labels")
    ts: str | None = Field(None, description="path of the timestamp (unix s, ms above 1e11, or ISO-8601); none: time of receipt")
    value: str = Field(description="path of the numeric value")

    @field_validator("points", "name", "labels", "ts", "value")
    @classmethod
    def _path(cls, text: str | None, info: ValidationInfo) -> str | None:
        if text is None or (info.field_name == "name" and text.startswith("=") and len(text) > 1):
            return text
        if not text or any(not key for key in text.split(".")):
            raise ValueError(f"{text!r} is not a dotted path (keys separated by single dots)")
        return text


class KafkaSettings(_Section):
    """The scale-out transport (docs/scaling.md): used by `server.mode: api-only` and `aiops worker`."""

    bootstrap: str = Field("127.0.0.1:9092", min_length=1, description="host:port[,host:port…] of the brokers")
    topics: KafkaTopics = KafkaTopics()
    group: str = Field("aiops-workers", min_length=1, description="consumer group of the workers")
    partitions: int = Field(12, ge=1, le=10_000, description="partitions of each topic but the dead letters, when created")
    create_topics: bool = Field(True, description="create missing topics at start (replication 1)")
    compression: Literal["zstd", "gzip", "none"] = "zstd"
    session_timeout_ms: int = Field(10_000, ge=1000, le=300_000, description="a silent worker loses its partitions after this")
    max_poll_records: int = Field(64, ge=1, description="records (each up to 16,384 points) fetched per poll")
    queue_records: int = Field(32, ge=1, description="records waiting for detection before the worker pauses its partitions")
    coalesce_records: int = Field(16, ge=1, description="records scored together in one detector call")
    checkpoint_every_s: float = Field(60.0, ge=0, description="save each owned partition's detector state this often (and on revocation); 0: only on revocation")
    mappings: list[KafkaMapping] = Field(default_factory=list, description="other teams' JSON topics the workers also read")

    @property
    def compression_type(self) -> str | None:
        """`compression` as kafka-python's `compression_type` (None: uncompressed)."""
        return None if self.compression == "none" else self.compression

    @model_validator(mode="after")
    def _distinct_topics(self) -> KafkaSettings:
        ours = {name for name in vars(self.topics).values() if name}
        mapped = [m.topic for m in self.mappings]
        clash = sorted({t for t in mapped if t in ours or mapped.count(t) > 1})
        if clash:
            raise ValueError(f"mapped topic(s) {', '.join(clash)} are mapped twice or are one of kafka.topics")
        return self


class IngestSettings(_Section):
    max_future_skew_s: float = Field(300.0, ge=0, description="points further in the future are rejected")
    max_series: int = Field(1_000_000, ge=1, description="cardinality limit: new series beyond it are rejected")


class TracesSettings(_Section):
    """Spans from POST /v1/traces turned into RED series and the traced service map (docs/logs-traces.md)."""

    enabled: bool = Field(True, description="false: POST /v1/traces answers 404")
    interval_s: float = Field(60.0, gt=0, description="RED figures are computed per interval this long")
    grace_s: float = Field(30.0, ge=0, description="an interval closes once spans end this long past its end")
    max_span_ids: int = Field(200_000, ge=1000, description="recent span ids remembered to find a parent in an earlier request")
    parent_wait_s: float = Field(
        5.0, ge=0, description="a span whose parent has not come yet waits this long (span time, at most grace_s) "
        "for it: exporters send a child before its parent, and without the parent the call is on no edge")
    watch_up: bool = Field(
        True, description="latency and error-ratio series of spans and edges are watched upwards only "
        "(a rule after detection.rules; a faster or cleaner service is good news)",
    )


_DETECTORS = default_registry()


class DetectorSpec(_Section):
    """A detector by name with its parameters, and optionally its own alert thresholds."""

    detector: str = "ensemble"
    params: dict[str, Any] = Field(default_factory=dict)
    counter: bool = Field(False, description="values only grow (resets aside): score their per-second rate")
    calibrate: bool = Field(False, description="calibrate scores against each series' own score history")
    warning_score: float | None = Field(None, ge=0, le=1, description="default: alerting.warning_score")
    critical_score: float | None = Field(None, ge=0, le=1, description="default: alerting.critical_score")
    runbook_url: str | None = Field(None, description="what to do when these series misbehave: shown in notifications")

    @field_validator("detector")
    @classmethod
    def _known(cls, name: str) -> str:
        if name not in _DETECTORS.names:
            raise ValueError(f"unknown detector {name!r}; available: {', '.join(_DETECTORS.names)}")
        return name

    @field_validator("params")
    @classmethod
    def _buildable(cls, params: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        name = info.data.get("detector")
        if name is None:
            return params  # the detector's own error is reported
        allowed = _DETECTORS.parameters(name)
        unknown = sorted(set(params) - set(allowed))
        if unknown:
            raise ValueError(f"unknown parameter(s) {', '.join(unknown)} for {name}; valid: {', '.join(allowed)}")
        try:
            _DETECTORS.create(name, **params)
        except (TypeError, ValueError, DetectorNotFound) as exc:
            raise ValueError(f"{name}: {exc}") from None
        return params

    def key(self) -> str:
        """Identity of the detector this spec builds: equal keys keep learned state across reloads."""
        return f"{self.detector}:{sorted(self.params.items())!r}:counter={self.counter}:calibrate={self.calibrate}"


class DetectionRule(DetectorSpec):
    selector: str = Field(description='Prometheus-style selector, e.g. {service="api", __name__=~"http_.*"}')

    @field_validator("selector")
    @classmethod
    def _parses(cls, text: str) -> str:
        try:
            parse_selector(text)
        except SelectorError as exc:
            raise ValueError(str(exc)) from None
        return text


class EntityRule(_Section):
    """Entities (e.g. hosts) whose metrics are judged together by an IsolationForest."""

    name: str = Field(pattern=r"^[a-zA-Z0-9_.-]+$")
    selector: str = Field("{}", description="which series may feed it")
    group_by: list[str] = Field(min_length=1, description="labels that identify an entity, e.g. [host]")
    features: list[str] = Field(min_length=2, description="metric names forming an entity's feature vector")
    interval_s: float = Field(60.0, gt=0, description="how often each entity's latest values are scored")
    refit_every_s: float = Field(600.0, gt=0, description="how often the forest is refit (in the background)")
    history: int = Field(2048, ge=64, description="feature rows kept for training")
    min_rows: int = Field(64, ge=8)
    n_estimators: int = Field(100, ge=10, le=1000)
    seed: int = 0
    warning_score: float = Field(0.5, ge=0, le=1, description="isolation scores have long tails: 0.5, not 0.4")
    critical_score: float = Field(0.7, ge=0, le=1)
    runbook_url: str | None = Field(None, description="what to do when an entity misbehaves: shown in notifications")

    @field_validator("selector")
    @classmethod
    def _parses(cls, text: str) -> str:
        return DetectionRule._parses(text)


class DetectionSettings(_Section):
    """Which detector watches which series: the first rule whose selector matches, else `default`."""

    default: DetectorSpec = DetectorSpec(detector="ensemble")
    rules: list[DetectionRule] = Field(default_factory=list)
    entities: list[EntityRule] = Field(default_factory=list)
    checkpoint_every_s: float = Field(
        300.0, ge=0, description="save learned detector state to the store this often (and at shutdown); 0: only at shutdown"
    )


class SilenceSpec(_Section):
    """A silence written in the settings file: alerts it matches are recorded but muted."""

    selector: str = Field(description='label matchers, e.g. {cluster="eu-1", service=~"batch-.*"}')
    starts_at: datetime
    ends_at: datetime
    comment: str = Field(min_length=1, max_length=1024)

    @field_validator("selector")
    @classmethod
    def _parses(cls, text: str) -> str:
        return DetectionRule._parses(text)

    @model_validator(mode="after")
    def _ordered(self) -> SilenceSpec:
        if self.ends_at <= self.starts_at:
            raise ValueError(f"ends_at ({self.ends_at}) must be after starts_at ({self.starts_at})")
        return self


_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class MaintenanceWindow(_Section):
    """A recurring silence: every listed weekday from `start` (UTC) for `duration_s`."""

    name: str = Field(min_length=1, max_length=128)
    selector: str
    weekdays: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = Field(
        default_factory=lambda: list(_WEEKDAYS)
    )
    start: str = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="HH:MM, UTC")
    duration_s: float = Field(gt=0, le=7 * 86400)

    @field_validator("selector")
    @classmethod
    def _parses(cls, text: str) -> str:
        return DetectionRule._parses(text)


class InhibitRule(_Section):
    """While an alert of `source_severity` fires, alerts of `target_severity` sharing `equal` are muted."""

    source_severity: Literal["warning", "critical"] = "critical"
    target_severity: Literal["warning", "critical"] = "warning"
    equal: list[str] = Field(min_length=1, description="labels both must share, e.g. [cluster]")
    source: str = Field("{}", description="selector the muting alert must match")
    target: str = Field("{}", description="selector the muted alert must match")

    @field_validator("source", "target")
    @classmethod
    def _parses(cls, text: str) -> str:
        return DetectionRule._parses(text)


class Route(_Section):
    """A node of the routing tree, in the spirit of Prometheus Alertmanager's routes.

    An alert enters at the root and descends into the first child whose selector matches (and on
    into later matching siblings too where a child says `continue`); the deepest matching nodes
    notify their receiver. Unset timing fields are inherited from the parent.
    """

    selector: str = "{}"
    receiver: str | None = None
    group_by: list[str] | None = None
    group_wait_s: float | None = Field(None, ge=0)
    group_interval_s: float | None = Field(None, gt=0)
    repeat_interval_s: float | None = Field(None, gt=0)
    continue_: bool = Field(False, alias="continue")
    routes: list[Route] = Field(default_factory=list)

    @field_validator("selector")
    @classmethod
    def _parses(cls, text: str) -> str:
        return DetectionRule._parses(text)


class IncidentSettings(_Section):
    """How alerts are grouped into incidents."""

    group_by: list[str] = Field(default_factory=lambda: ["cluster"], description="labels alerts of one incident share")
    window_s: float = Field(900.0, gt=0, description="an alert joins an incident updated at most this long ago")
    topology: dict[str, list[str]] = Field(
        default_factory=dict, description="service → the services it calls; connected services share incidents"
    )
    change_lookback_s: float = Field(3600.0, gt=0, description="changes this long before an incident are candidates")


class ReceiverSpec(_Section):
    """A named destination for notifications: any number of webhooks, Slack channels and PagerDuty services."""

    name: str = Field(pattern=r"^[a-zA-Z0-9_.-]+$")
    webhook: list[WebhookConfig] = Field(default_factory=list)
    slack: list[SlackConfig] = Field(default_factory=list)
    pagerduty: list[PagerDutyConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _has_target(self) -> ReceiverSpec:
        if not (self.webhook or self.slack or self.pagerduty):
            raise ValueError(f"receiver {self.name!r} has no webhook, slack or pagerduty entry")
        return self


class EscalationStep(_Section):
    receiver: str
    wait_s: float = Field(900.0, gt=0, description="how long this step waits for an acknowledgement before the next")


class EscalationPolicy(_Section):
    """Who is paged for an unacknowledged incident, step after step, until someone acknowledges it."""

    name: str = Field(pattern=r"^[a-zA-Z0-9_.-]+$")
    selector: str = Field("{}", description="incidents whose first alert matches follow this policy (first match wins)")
    steps: list[EscalationStep] = Field(min_length=1)
    delay_s: float = Field(0.0, ge=0, description="page the first step only if the incident is still open this long after it opened")
    repeat: int = Field(0, ge=0, le=10, description="times the steps run again from the first when nobody acknowledges")

    @field_validator("selector")
    @classmethod
    def _parses(cls, text: str) -> str:
        return DetectionRule._parses(text)


class AlertingSettings(_Section):
    warning_score: float = Field(
        0.6, ge=0, le=1, description="a score at or above opens a warning alert (0.6: near the NAB dev-set optimum 0.556)"
    )
    critical_score: float = Field(0.8, ge=0, le=1, description="a score at or above makes it critical")
    resolve_after_s: float = Field(300.0, gt=0, description="an alert with no anomaly for this long resolves")
    silences: list[SilenceSpec] = Field(default_factory=list)
    maintenance: list[MaintenanceWindow] = Field(default_factory=list)
    inhibit: list[InhibitRule] = Field(default_factory=list)
    incidents: IncidentSettings = IncidentSettings()
    flap_opens: int = Field(3, ge=2, description="this many openings of one alert within flap_window_s make it flapping")
    flap_window_s: float = Field(3600.0, gt=0)
    flap_hold: float = Field(4.0, ge=1, description="a flapping alert needs resolve_after_s × this of quiet to resolve")
    receivers: list[ReceiverSpec] = Field(default_factory=list)
    route: Route | None = Field(None, description="the routing tree; none: alerts are recorded, not sent")
    escalation: list[EscalationPolicy] = Field(default_factory=list)

    @model_validator(mode="after")
    def _ordered(self) -> AlertingSettings:
        if self.critical_score < self.warning_score:
            raise ValueError(
                f"critical_score ({self.critical_score}) must not be below warning_score ({self.warning_score})"
            )
        return self

    @model_validator(mode="after")
    def _receivers_exist(self) -> AlertingSettings:
        names = [r.name for r in self.receivers]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"receiver name(s) used twice: {', '.join(twice)}")
        used: list[tuple[str, str]] = []
        if self.route is not None:
            if self.route.receiver is None:
                raise ValueError("route: the root route needs a receiver (it catches what no child route takes)")
            stack = [("route", self.route)]
            while stack:
                where, node = stack.pop()
                if node.receiver is not None:
                    used.append((where, node.receiver))
                stack.extend((f"{where}.routes[{i}]", child) for i, child in enumerate(node.routes))
        for i, policy in enumerate(self.escalation):
            used += [(f"escalation[{i}].steps[{j}]", step.receiver) for j, step in enumerate(policy.steps)]
        unknown = [f"{where}: {name!r}" for where, name in used if name not in names]
        if unknown:
            known = ", ".join(names) or "none configured"
            raise ValueError(f"unknown receiver(s) ({'; '.join(sorted(unknown))}); receivers: {known}")
        return self


class RemediationSettings(_Section):
    """Runbooks and the executor that runs them (docs/remediation.md)."""

    enabled: bool = Field(True, description="false: the kill switch, from config (no runbook acts; dry runs still record)")
    runbooks: list[Runbook] = Field(default_factory=list)
    runbook_files: list[Path] = Field(default_factory=list, description="YAML files of `runbooks: [...]`, loaded too")
    vars: dict[str, str] = Field(default_factory=dict, description="values runbook templates read as {{ vars.NAME }}")
    jenkins: dict[str, JenkinsConfig] = Field(
        default_factory=dict, description="Jenkins servers by name; a jenkins step names one in with.server (default: the only one)"
    )
    executor: bool = Field(True, description="run an executor in this process (several processes may share a store)")
    workers: int = Field(2, ge=1, le=32, description="executions advanced at once by this process")
    lease_s: float = Field(30.0, ge=2, description="a claimed execution whose executor stops heartbeating is taken over after this")
    poll_s: float = Field(1.0, gt=0, le=60)

    @field_validator("runbooks")
    @classmethod
    def _selectors(cls, runbooks: list[Runbook]) -> list[Runbook]:
        for rb in runbooks:
            try:
                parse_selector(rb.match.selector)
            except SelectorError as exc:
                raise ValueError(f"runbook {rb.name!r}: match.selector: {exc}") from None
        names = [r.name for r in runbooks]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"runbook name(s) used twice: {', '.join(twice)}")
        return runbooks

    @model_validator(mode="after")
    def _jenkins_servers(self) -> RemediationSettings:
        for rb in self.runbooks:
            for step in [*rb.steps, *rb.rollback]:
                if step.action != "jenkins":
                    continue
                server = step.with_.get("server")
                if server is None and len(self.jenkins) != 1:
                    raise ValueError(f"runbook {rb.name!r}, step {step.name!r}: name a server in with.server "
                                     f"(remediation.jenkins has {len(self.jenkins)})")
                if server is not None and server not in self.jenkins:
                    raise ValueError(f"runbook {rb.name!r}, step {step.name!r}: no Jenkins server {server!r} in "
                                     f"remediation.jenkins ({', '.join(self.jenkins) or 'none configured'})")
        return self


class ForecastRule(_Section):
    """Series to forecast and the limit they must not cross: a fixed threshold or another series."""

    selector: str = Field(description='which series, e.g. {__name__="disk_used_percent"}')
    threshold: float | None = Field(None, description="the limit, in the series' units")
    limit_metric: str | None = Field(
        None, description="or: the limit is the latest value of the series with this name and the same labels"
    )
    direction: Literal["up", "down"] = Field("up", description="up: alert before reaching it from below")
    lead_time_s: float = Field(6 * 3600.0, gt=0, description="alert when the likely crossing is closer than this")
    horizon_s: float = Field(24 * 3600.0, gt=0, description="how far ahead to forecast")
    kind: Literal["gauge", "counter"] = Field("gauge", description="counter: forecast its per-second rate")
    method: Literal["auto", "linear", "holt_winters", "ets", "prophet"] = Field(
        "auto", description="auto: chosen per series by backtest; linear: a line through the last window_s "
        "(predict_linear); holt_winters, ets, prophet: that library model, fitted per series (slower: few series)",
    )
    window_s: float = Field(3600.0, gt=0, description="for method linear: how much recent history the line is fit to")

    @field_validator("selector")
    @classmethod
    def _parses(cls, text: str) -> str:
        return DetectionRule._parses(text)

    @model_validator(mode="after")
    def _one_limit(self) -> ForecastRule:
        if (self.threshold is None) == (self.limit_metric is None):
            raise ValueError("give exactly one of threshold and limit_metric")
        if self.lead_time_s > self.horizon_s:
            raise ValueError(f"lead_time_s ({self.lead_time_s:g}) must not exceed horizon_s ({self.horizon_s:g})")
        return self


class ForecastingSettings(_Section):
    """Capacity forecasts over downsampled history, and predictive alerts (docs/forecasting.md)."""

    enabled: bool = True
    step_s: float = Field(300.0, ge=1, description="history is kept as means of buckets this wide")
    history_days: float = Field(14.0, gt=0, le=90, description="how much downsampled history is kept per watched series")
    every_s: float = Field(300.0, gt=0, description="how often forecasts run (off the ingest path)")
    level: float = Field(0.8, gt=0, lt=1, description="central probability of the prediction intervals")
    rules: list[ForecastRule] = Field(default_factory=list)

    @property
    def buckets(self) -> int:
        return max(int(round(self.history_days * 86400 / self.step_s)), 2)


class LogSettings(_Section):
    """Logs as signals: template mining, counts per template and source, new templates (docs/logs-traces.md)."""

    enabled: bool = Field(True, description="false: POST /v1/logs answers 404 and no miner runs")
    interval_s: float = Field(60.0, gt=0, description="log_template_count / log_error_count are counted per interval")
    grace_s: float = Field(30.0, ge=0, description="an interval closes once records this much later arrived")
    warmup_records: int = Field(10_000, ge=0, description="templates first seen after this many records are anomalies")
    examples: int = Field(3, ge=0, le=20, description="example lines (secrets masked) kept per template and shown")
    max_templates: int = Field(10_000, ge=1, description="miner cap; past it the least recently seen template goes")


class DemoSettings(_Section):
    services: int = Field(3, ge=1, le=50)
    hosts_per_service: int = Field(4, ge=1, le=100)
    interval_s: float = Field(5.0, gt=0, description="seconds between live samples of each metric")
    backfill_hours: float = Field(26.0, ge=0, description="history sent at start so detectors are warm")
    backfill_step_s: float = Field(60.0, gt=0)
    first_incident_after_s: float = Field(20.0, ge=0)
    incident_every_s: float = Field(120.0, gt=0)
    incident_duration_s: float = Field(60.0, gt=0)
    seed: int = 7

    @model_validator(mode="after")
    def _no_overlap(self) -> DemoSettings:
        if self.incident_duration_s > self.incident_every_s:
            raise ValueError(
                f"incident_duration_s ({self.incident_duration_s}) must not exceed incident_every_s ({self.incident_every_s})"
            )
        return self


class Settings(_Section):
    data_dir: Path = Path("data")
    server: ServerSettings = ServerSettings()
    logging: LoggingSettings = LoggingSettings()
    store: StoreSettings = StoreSettings()
    bus: BusSettings = BusSettings()
    ingest: IngestSettings = IngestSettings()
    kafka: KafkaSettings = KafkaSettings()
    detection: DetectionSettings = DetectionSettings()
    alerting: AlertingSettings = AlertingSettings()
    remediation: RemediationSettings = RemediationSettings()
    forecasting: ForecastingSettings = ForecastingSettings()
    logs: LogSettings = LogSettings()
    traces: TracesSettings = TracesSettings()
    demo: DemoSettings = DemoSettings()

    @model_validator(mode="after")
    def _escalation_receivers(self) -> Settings:
        known = {r.name for r in self.alerting.receivers}
        for i, rb in enumerate(self.remediation.runbooks):
            if rb.escalate.receiver is not None and rb.escalate.receiver not in known:
                raise ValueError(f"remediation.runbooks[{i}] ({rb.name}): escalate.receiver {rb.escalate.receiver!r} "
                                 f"is not among alerting.receivers ({', '.join(sorted(known)) or 'none configured'})")
        return self

    @property
    def store_url(self) -> str:
        return self.store.url or f"sqlite:///{(self.data_dir / 'aiops.db').as_posix()}"
