"""Tables of the store, as SQLAlchemy Core metadata; Alembic migrations create them.

Times are unix seconds (float) everywhere, as in the pipeline. Labels are kept twice on purpose:
as JSON on the series for reading, and as rows of `series_labels` for indexed filtering that works
the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    BigInteger,
    LargeBinary,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    false,
    text,
)

__all__ = [
    "metadata",
    "series",
    "series_labels",
    "anomalies",
    "alerts",
    "audit_log",
    "checkpoints",
    "change_events",
    "change_event_labels",
    "silences",
    "incidents",
    "incident_alerts",
    "incident_timeline",
    "notifications",
    "executions",
    "execution_steps",
    "verification_watches",
    "switches",
    "forecasts",
    "partition_epochs",
]

# SQLite only autoincrements an INTEGER PRIMARY KEY; PostgreSQL gets 64-bit ids.
Id = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

series = Table(
    "series",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),  # dense id from the registry
    Column("name", String(256), nullable=False),
    Column("labels", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
)

series_labels = Table(
    "series_labels",
    metadata,
    Column("series_id", Integer, ForeignKey("series.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(128), primary_key=True),
    Column("value", String(1024), nullable=False),
    Index("ix_series_labels_key_value", "key", "value"),
)

anomalies = Table(
    "anomalies",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("series_id", Integer, ForeignKey("series.id"), nullable=False, index=True),
    Column("ts", Float, nullable=False, index=True),
    Column("value", Float, nullable=False),
    Column("expected", Float),
    Column("lower", Float),
    Column("upper", Float),
    Column("score", Float, nullable=False),
    Column("severity", String(16), nullable=False),
    Column("detector", String(64), nullable=False),
    Column("explanation", JSON, nullable=False),
    Column("alert_id", BigInteger, index=True),
    Column("created_at", Float, nullable=False),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("fingerprint", String(64), nullable=False, index=True),
    Column("kind", String(32), nullable=False),  # anomaly | predictive | external
    Column("series_id", Integer, ForeignKey("series.id"), index=True),
    Column("state", String(16), nullable=False),  # firing | resolved
    Column("severity", String(16), nullable=False),
    Column("summary", String(1024), nullable=False),
    Column("labels", JSON, nullable=False),
    Column("first_seen", Float, nullable=False),  # data time of the first anomaly
    Column("last_seen", Float, nullable=False),  # data time of the latest anomaly
    Column("updated_at", Float, nullable=False),  # wall-clock time of the latest change
    Column("resolved_at", Float),
    Column("count", Integer, nullable=False),
    Column("details", JSON, nullable=False),  # the latest anomaly's value, band, score, detector
    Column("silenced_by", String(64)),  # the silence that muted it ("api:12", "config:0"); still recorded
    Column("flapping", Boolean, nullable=False, server_default=false()),  # reopened often: held longer
    # one firing alert per fingerprint: the database enforces the deduplication
    Index(
        "uq_alerts_fingerprint_firing",
        "fingerprint",
        unique=True,
        sqlite_where=text("state = 'firing'"),
        postgresql_where=text("state = 'firing'"),
    ),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("ts", Float, nullable=False, index=True),
    Column("actor", String(128), nullable=False),
    Column("action", String(64), nullable=False),
    Column("subject", String(256), nullable=False),
    Column("detail", JSON, nullable=False),
)

checkpoints = Table(
    "checkpoints",
    metadata,
    Column("name", String(128), primary_key=True),  # e.g. "detection"; later one per Kafka partition
    Column("created_at", Float, nullable=False),
    Column("data", LargeBinary, nullable=False),  # detectors.checkpoint.pack: npz, no pickle
)

change_events = Table(
    "change_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("ts", Float, nullable=False, index=True),  # when the change happened
    Column("kind", String(32), nullable=False),  # deploy | config | ticket | feature_flag | other
    Column("title", String(256), nullable=False),
    Column("source", String(128), nullable=False),
    Column("labels", JSON, nullable=False),
    Column("detail", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
)

change_event_labels = Table(
    "change_event_labels",
    metadata,
    Column("event_id", BigInteger().with_variant(Integer(), "sqlite"), ForeignKey("change_events.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(128), primary_key=True),
    Column("value", String(1024), nullable=False),
    Index("ix_change_event_labels_key_value", "key", "value"),
)

silences = Table(
    "silences",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("selector", String(1024), nullable=False),  # Prometheus-style label matchers
    Column("starts_at", Float, nullable=False),
    Column("ends_at", Float, nullable=False),
    Column("comment", String(1024), nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("created_at", Float, nullable=False),
)

incidents = Table(
    "incidents",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("group_key", String(512), nullable=False, index=True),  # what its alerts share
    Column("state", String(16), nullable=False),  # open | acknowledged | remediating | resolved
    Column("severity", String(16), nullable=False),
    Column("title", String(1024), nullable=False),
    Column("labels", JSON, nullable=False),  # the labels its alerts share
    Column("services", JSON, nullable=False),  # every service among its alerts
    Column("opened_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("acknowledged_at", Float),
    Column("acknowledged_by", String(128)),
    Column("resolved_at", Float),
    Column("alert_count", Integer, nullable=False),
    Column("escalation_policy", String(128)),  # the policy it follows, if any
    Column("escalation_step", Integer, nullable=False, server_default=text("0")),  # the step last notified
    Column("escalation_round", Integer, nullable=False, server_default=text("0")),  # repeats done
    Column("escalation_next_at", Float),  # when the next step is due; none: escalation stopped
)

incident_alerts = Table(
    "incident_alerts",
    metadata,
    Column("incident_id", BigInteger().with_variant(Integer(), "sqlite"), ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True),
    Column("alert_id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("firing", Boolean, nullable=False),
)

incident_timeline = Table(
    "incident_timeline",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("incident_id", BigInteger().with_variant(Integer(), "sqlite"), ForeignKey("incidents.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("ts", Float, nullable=False),
    Column("actor", String(128), nullable=False),  # pipeline, or who acted
    Column("kind", String(32), nullable=False),  # opened | alert_added | alert_resolved | acknowledged | remediating | escalated | escalation_exhausted | comment | resolved
    Column("detail", JSON, nullable=False),
)

notifications = Table(  # the outbox: what is to be, or was, delivered to a receiver's integration
    "notifications",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("idempotency_key", String(64), nullable=False, unique=True),  # one row per distinct message
    Column("created_at", Float, nullable=False),
    Column("receiver", String(128), nullable=False),
    Column("integration", String(32), nullable=False),  # webhook:0 | slack:1 | pagerduty:0 …
    Column("action", String(16), nullable=False),  # trigger | acknowledge | resolve
    Column("reason", String(32), nullable=False),  # first | changed | repeat | resolved | escalation | acknowledged
    Column("subject", String(256), nullable=False),  # group:<hash> or incident:<id>: the PagerDuty dedup key
    Column("incident_id", Id, index=True),
    Column("payload", JSON, nullable=False),
    Column("state", String(16), nullable=False),  # pending | sent | failed
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", Float, nullable=False),
    Column("sent_at", Float),
    Column("last_error", String(1024)),
    Index("ix_notifications_pending", "state", "next_attempt_at"),
)

executions = Table(  # one run of a runbook: a persisted state machine
    "executions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("runbook", String(128), nullable=False, index=True),
    Column("target", String(512), nullable=False, index=True),
    Column("alert_id", Id),
    Column("incident_id", Id),
    Column("series_id", Id),
    # pending | awaiting_approval | running | verifying | rolling_back | succeeded | rolled_back | escalated | failed | cancelled
    Column("state", String(24), nullable=False, index=True),
    Column("dry_run", Boolean, nullable=False),
    Column("context", JSON, nullable=False),  # the alert as the templates see it, rendered params, opening band
    Column("requested_by", String(128), nullable=False),  # pipeline, or who ran it by hand
    Column("decided_by", String(128)),  # who approved or rejected
    Column("reason", String(1024), nullable=False),  # why it is in its state
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("verify_deadline", Float),
    Column("wake_at", Float),  # when a waiting execution (a wait step, a check, verification) is due again
    Column("lease_owner", String(128)),
    Column("lease_expires_at", Float),
)

execution_steps = Table(  # each attempt at a step, written before the action runs and after it returns
    "execution_steps",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("execution_id", Id, ForeignKey("executions.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("phase", String(16), nullable=False),  # steps | rollback
    Column("idx", Integer, nullable=False),
    Column("name", String(128), nullable=False),
    Column("action", String(16), nullable=False),
    Column("state", String(16), nullable=False),  # running | succeeded | failed | dry_run
    Column("attempts", Integer, nullable=False),
    Column("inputs", JSON, nullable=False),
    Column("outputs", JSON, nullable=False),  # results, and progress that lets a resumed step follow on
    Column("error", String(2048)),
    Column("idempotency_key", String(64), nullable=False),
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float),
)

verification_watches = Table(  # series an execution waits to see normal again; the pipeline keeps them current
    "verification_watches",
    metadata,
    Column("execution_id", Id, ForeignKey("executions.id", ondelete="CASCADE"), primary_key=True),
    Column("purpose", String(64), primary_key=True),  # verify, or check:<step name>
    Column("series_id", Id, nullable=False, index=True),
    Column("max_score", Float, nullable=False),
    Column("lower", Float),  # the band normal values must be inside (none: score only)
    Column("upper", Float),
    Column("normal_since", Float),  # data time since which every point was normal
    Column("last_ts", Float),
    Column("last_value", Float),
    Column("last_score", Float),
)

switches = Table(  # operator switches set through the API, e.g. the remediation kill switch
    "switches",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("engaged", Boolean, nullable=False),
    Column("reason", String(1024), nullable=False),
    Column("changed_by", String(128), nullable=False),
    Column("changed_at", Float, nullable=False),
)

forecasts = Table(  # the latest forecast of each watched series
    "forecasts",
    metadata,
    Column("series_id", Id, primary_key=True),
    Column("created_at", Float, nullable=False),
    Column("status", String(16), nullable=False),  # ok | too_short
    Column("reason", String(256), nullable=False),
    Column("model", String(128), nullable=False),  # the method chosen by backtest
    Column("backtest_error", Float),  # its mean absolute error on the series' recent history
    Column("level", Float, nullable=False),  # the intervals' central probability
    Column("kind", String(16), nullable=False),  # gauge | counter (then the values are per-second rates)
    Column("ts", JSON, nullable=False),  # horizon timestamps
    Column("yhat", JSON, nullable=False),
    Column("lower", JSON, nullable=False),
    Column("upper", JSON, nullable=False),
    Column("threshold", Float),
    Column("direction", String(8), nullable=False),
    Column("earliest", Float),  # crossing times of the far bound, yhat and the near bound; null: not within the horizon
    Column("likely", Float),
    Column("latest", Float),
)

partition_epochs = Table(  # who owns a Kafka partition's effects: the worker holding the latest epoch (aiops.fencing)
    "partition_epochs",
    metadata,
    Column("consumer_group", String(255), primary_key=True),
    Column("topic", String(255), primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("epoch", BigInteger, nullable=False),  # raised by one at every claim (assignment)
    Column("claimed_at", Float, nullable=False),
)
