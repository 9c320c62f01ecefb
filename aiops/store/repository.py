"""Reads and writes of the store, each a function over an open connection (one transaction)."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, and_, delete, exists, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from aiops.store.schema import (
    alerts,
    anomalies,
    audit_log,
    change_event_labels,
    change_events,
    checkpoints,
    partition_epochs,
    series,
    series_labels,
    silences,
)
from ingest.registry import SeriesKey

__all__ = [
    "CursorError",
    "ListQuery",
    "Page",
    "append_audit",
    "claim_partition",
    "hold_partition",
    "partition_epoch",
    "decode_cursor",
    "encode_cursor",
    "firing_alerts",
    "insert_alert",
    "insert_anomalies",
    "insert_change_events",
    "list_change_events",
    "insert_series",
    "get_silence",
    "insert_silence",
    "list_silences",
    "update_silence",
    "list_alerts",
    "list_anomalies",
    "list_audit",
    "page",
    "load_checkpoint",
    "load_checkpoints",
    "load_series",
    "save_checkpoint",
    "update_alert",
]


class CursorError(ValueError):
    """A pagination cursor that this API did not hand out."""


@dataclass(frozen=True, slots=True)
class ListQuery:
    """Filters shared by the list endpoints; `labels` must all match (on the series)."""

    start: float | None = None
    end: float | None = None
    name: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    severity: str | None = None
    state: str | None = None
    kind: str | None = None
    cursor: int | None = None  # only rows with a smaller id (newest first)
    limit: int = 100


@dataclass(frozen=True, slots=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, value = raw.partition(":")
        if kind != "id":
            raise ValueError(raw)
        return int(value)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CursorError(f"invalid cursor {cursor!r}: pass the next_cursor of a previous page") from exc


# -- series -------------------------------------------------------------------------------------


def load_series(conn: Connection) -> list[tuple[int, SeriesKey]]:
    rows = conn.execute(select(series.c.id, series.c.name, series.c.labels).order_by(series.c.id))
    return [(r.id, (r.name, tuple(sorted(r.labels.items())))) for r in rows]


def insert_series(conn: Connection, rows: Sequence[tuple[int, SeriesKey]], now: float) -> None:
    if not rows:
        return
    conn.execute(
        insert(series),
        [{"id": sid, "name": name, "labels": dict(labels), "created_at": now} for sid, (name, labels) in rows],
    )
    label_rows = [{"series_id": sid, "key": k, "value": v} for sid, (_, labels) in rows for k, v in labels]
    if label_rows:
        conn.execute(insert(series_labels), label_rows)


def _in_time(column, q: ListQuery) -> list:
    """Conditions keeping `column` within the query's [start, end]."""
    return [c for c in (column >= q.start if q.start is not None else None, column <= q.end if q.end is not None else None) if c is not None]


def _labelled(label_table, owner_col, id_col, labels: Mapping[str, str]) -> list:
    """Conditions requiring every key=value in `labels` among the owner's label rows."""
    return [
        exists().where(and_(owner_col == id_col, label_table.c.key == key, label_table.c.value == value))
        for key, value in labels.items()
    ]


def series_conditions(series_col, name: str | None, labels: Mapping[str, str]) -> list:
    """Conditions on a column holding series ids: the series has this name and these labels."""
    conditions = []
    if name is not None:
        conditions.append(series_col.in_(select(series.c.id).where(series.c.name == name)))
    return conditions + _labelled(series_labels, series_labels.c.series_id, series_col, labels)


# -- anomalies ----------------------------------------------------------------------------------


def insert_anomalies(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    if rows:
        conn.execute(insert(anomalies), list(rows))


def list_anomalies(conn: Connection, q: ListQuery) -> Page:
    t = anomalies
    conditions = series_conditions(t.c.series_id, q.name, q.labels) + _in_time(t.c.ts, q)
    if q.severity is not None:
        conditions.append(t.c.severity == q.severity)
    stmt = (
        select(t, series.c.name, series.c.labels)
        .join(series, series.c.id == t.c.series_id)
        .where(*conditions)
    )
    return page(conn, stmt, t.c.id, q)


# -- alerts -------------------------------------------------------------------------------------


def insert_alert(conn: Connection, row: Mapping[str, Any]) -> int:
    return int(conn.execute(insert(alerts).returning(alerts.c.id), [dict(row)]).scalar_one())


def update_alert(conn: Connection, alert_id: int, values: Mapping[str, Any]) -> None:
    conn.execute(update(alerts).where(alerts.c.id == alert_id).values(**values))


def firing_alerts(conn: Connection, fingerprints: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Firing alerts, all of them or those of `fingerprints`."""
    stmt = select(alerts).where(alerts.c.state == "firing")
    if fingerprints is not None:
        stmt = stmt.where(alerts.c.fingerprint.in_(list(fingerprints)))
    rows = conn.execute(stmt.order_by(alerts.c.id))
    return [dict(r._mapping) for r in rows]


def list_alerts(conn: Connection, q: ListQuery) -> Page:
    t = alerts
    conditions = series_conditions(t.c.series_id, q.name, q.labels)
    if q.start is not None:  # alerts active at some time in [start, end]
        conditions.append(t.c.last_seen >= q.start)
    if q.end is not None:
        conditions.append(t.c.first_seen <= q.end)
    if q.severity is not None:
        conditions.append(t.c.severity == q.severity)
    if q.state is not None:
        conditions.append(t.c.state == q.state)
    return page(conn, select(t).where(*conditions), t.c.id, q)


# -- audit --------------------------------------------------------------------------------------


def append_audit(conn: Connection, entries: Iterable[Mapping[str, Any]]) -> None:
    rows = list(entries)
    if rows:
        conn.execute(insert(audit_log), rows)


def list_audit(conn: Connection, q: ListQuery) -> Page:
    conditions = _in_time(audit_log.c.ts, q)
    return page(conn, select(audit_log).where(*conditions), audit_log.c.id, q)


# -- change events ------------------------------------------------------------------------------


def insert_change_events(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> list[int]:
    ids = []
    for row in rows:  # a handful per request: ids are needed for the label rows
        event_id = int(conn.execute(insert(change_events).returning(change_events.c.id), [dict(row)]).scalar_one())
        ids.append(event_id)
        labels = [{"event_id": event_id, "key": k, "value": v} for k, v in row["labels"].items()]
        if labels:
            conn.execute(insert(change_event_labels), labels)
    return ids


def list_change_events(conn: Connection, q: ListQuery) -> Page:
    t = change_events
    conditions = _labelled(change_event_labels, change_event_labels.c.event_id, t.c.id, q.labels) + _in_time(t.c.ts, q)
    if q.kind is not None:
        conditions.append(t.c.kind == q.kind)
    return page(conn, select(t).where(*conditions), t.c.id, q)


# -- silences -----------------------------------------------------------------------------------


def insert_silence(conn: Connection, row: Mapping[str, Any]) -> int:
    return int(conn.execute(insert(silences).returning(silences.c.id), [dict(row)]).scalar_one())


def get_silence(conn: Connection, silence_id: int) -> dict[str, Any] | None:
    row = conn.execute(select(silences).where(silences.c.id == silence_id)).first()
    return dict(row._mapping) if row else None


def update_silence(conn: Connection, silence_id: int, values: Mapping[str, Any]) -> bool:
    return conn.execute(update(silences).where(silences.c.id == silence_id).values(**values)).rowcount > 0


def list_silences(conn: Connection, q: ListQuery, now: float | None = None) -> Page:
    """`q.state`: active (now within), pending (starts later) or expired (ended); None: all."""
    t = silences
    conditions = []
    if q.state == "active":
        conditions += [t.c.starts_at <= now, t.c.ends_at > now]
    elif q.state == "pending":
        conditions.append(t.c.starts_at > now)
    elif q.state == "expired":
        conditions.append(t.c.ends_at <= now)
    return page(conn, select(t).where(*conditions), t.c.id, q)


# -- checkpoints --------------------------------------------------------------------------------


def save_checkpoint(conn: Connection, name: str, data: bytes, now: float) -> None:
    """Replace the checkpoint called `name` (delete + insert: the same on SQLite and PostgreSQL)."""
    conn.execute(delete(checkpoints).where(checkpoints.c.name == name))
    conn.execute(insert(checkpoints), [{"name": name, "created_at": now, "data": data}])


def load_checkpoint(conn: Connection, name: str) -> tuple[bytes, float] | None:
    row = conn.execute(select(checkpoints.c.data, checkpoints.c.created_at).where(checkpoints.c.name == name)).first()
    return (bytes(row.data), row.created_at) if row else None


def load_checkpoints(conn: Connection, prefix: str) -> dict[str, bytes]:
    """Every checkpoint whose name starts with `prefix` (`%` and `_` in it match literally)."""
    rows = conn.execute(select(checkpoints.c.name, checkpoints.c.data)
                        .where(checkpoints.c.name.startswith(prefix, autoescape=True)))
    return {row.name: bytes(row.data) for row in rows}


# -- partition epochs (fencing, aiops.fencing) ------------------------------------------------------


def _epoch_of(group: str, topic: str, partition: int) -> list:
    t = partition_epochs
    return [t.c.consumer_group == group, t.c.topic == topic, t.c.partition == partition]


def claim_partition(conn: Connection, group: str, topic: str, partition: int, now: float) -> int:
    """Become the partition's owner: its epoch raised by one (1 for the first owner), returned.

    Insert-if-absent then an increment in place: two claimers never get the same epoch, on SQLite
    (one writer) and on PostgreSQL (the row lock is held until the claimer's transaction ends)."""
    t = partition_epochs
    row = {"consumer_group": group, "topic": topic, "partition": partition, "epoch": 0, "claimed_at": now}
    upsert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    conn.execute(upsert(t).on_conflict_do_nothing(), [row])
    stmt = update(t).where(*_epoch_of(group, topic, partition)).values(epoch=t.c.epoch + 1, claimed_at=now)
    return int(conn.execute(stmt.returning(t.c.epoch)).scalar_one())


def hold_partition(conn: Connection, group: str, topic: str, partition: int, epoch: int) -> bool:
    """Whether `epoch` is still the partition's latest: a compare-and-set that also locks the row (on
    PostgreSQL) until the transaction ends, so no claim slips in between this check and the commit."""
    t = partition_epochs
    stmt = update(t).where(*_epoch_of(group, topic, partition), t.c.epoch == epoch).values(epoch=epoch)
    return conn.execute(stmt).rowcount == 1


def partition_epoch(conn: Connection, group: str, topic: str, partition: int) -> int | None:
    """The partition's latest epoch (None: never claimed)."""
    stmt = select(partition_epochs.c.epoch).where(*_epoch_of(group, topic, partition))
    return conn.execute(stmt).scalar_one_or_none()


def page(conn: Connection, stmt, id_col, q: ListQuery) -> Page:
    """Rows of `stmt` newest first (by `id_col`), `q.limit` at a time after `q.cursor`."""
    if q.cursor is not None:
        stmt = stmt.where(id_col < q.cursor)
    rows = [dict(r._mapping) for r in conn.execute(stmt.order_by(id_col.desc()).limit(q.limit + 1))]
    more = len(rows) > q.limit
    rows = rows[: q.limit]
    return Page(rows, encode_cursor(rows[-1]["id"]) if more else None)
