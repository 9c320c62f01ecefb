"""The store on SQLite and PostgreSQL: migrations, series, anomalies, alerts, audit, pagination."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError

from aiops.store import CursorError, ListQuery, decode_cursor, encode_cursor, repository
from aiops.store.schema import metadata


def _alert(fp: str, series_id: int, state: str = "firing", ts: float = 100.0) -> dict:
    return {
        "fingerprint": fp,
        "kind": "anomaly",
        "series_id": series_id,
        "state": state,
        "severity": "warning",
        "summary": "s",
        "labels": {},
        "first_seen": ts,
        "last_seen": ts,
        "updated_at": ts,
        "resolved_at": None,
        "count": 1,
        "details": {},
    }


def _anomaly(series_id: int, ts: float, severity: str = "warning") -> dict:
    return {
        "series_id": series_id,
        "ts": ts,
        "value": 1.0,
        "expected": 0.0,
        "lower": -1.0,
        "upper": 1.0,
        "score": 0.99999,
        "severity": severity,
        "detector": "ewma_zscore",
        "explanation": {"detectors": {"ewma_zscore": 0.99999}},
        "alert_id": None,
        "created_at": ts,
    }


SERIES = [
    (0, ("cpu", (("host", "a"), ("service", "api")))),
    (1, ("cpu", (("host", "b"), ("service", "api")))),
    (2, ("latency", (("host", "a"), ("service", "web")))),
]


def test_migrations_create_every_table_and_are_idempotent(store):
    store.migrate()  # a second run changes nothing and does not fail
    names = set(inspect(store.engine).get_table_names())
    assert {t.name for t in metadata.sorted_tables} <= names
    assert "alembic_version" in names


def test_migrations_build_exactly_what_the_schema_declares(store):
    """Alembic's own comparison finds no difference between the migrated database and `metadata`."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_server_default": False}), metadata)
    assert diff == []


def test_series_round_trip_keeps_ids_and_sorted_labels(store):
    with store.begin() as conn:
        repository.insert_series(conn, SERIES, now=1.0)
    with store.begin() as conn:
        assert repository.load_series(conn) == SERIES


def test_anomaly_filters_by_label_name_time_and_severity(store):
    with store.begin() as conn:
        repository.insert_series(conn, SERIES, now=1.0)
        repository.insert_anomalies(
            conn, [_anomaly(0, 10.0), _anomaly(1, 20.0, "critical"), _anomaly(2, 30.0), _anomaly(0, 40.0)]
        )
    with store.begin() as conn:
        def ids(**kw):
            return [(r["series_id"], r["ts"]) for r in repository.list_anomalies(conn, ListQuery(**kw)).items]

        assert ids() == [(0, 40.0), (2, 30.0), (1, 20.0), (0, 10.0)]
        assert ids(labels={"service": "api"}) == [(0, 40.0), (1, 20.0), (0, 10.0)]
        assert ids(labels={"service": "api", "host": "a"}) == [(0, 40.0), (0, 10.0)]
        assert ids(name="latency") == [(2, 30.0)]
        assert ids(start=15.0, end=35.0) == [(2, 30.0), (1, 20.0)]
        assert ids(severity="critical") == [(1, 20.0)]
        row = repository.list_anomalies(conn, ListQuery(limit=1)).items[0]
        assert row["name"] == "cpu" and row["labels"] == {"host": "a", "service": "api"}


def test_cursor_pagination_walks_every_row_once(store):
    with store.begin() as conn:
        repository.insert_series(conn, SERIES, now=1.0)
        repository.insert_anomalies(conn, [_anomaly(i % 3, float(i)) for i in range(25)])
    seen = []
    cursor = None
    with store.begin() as conn:
        while True:
            page = repository.list_anomalies(conn, ListQuery(limit=10, cursor=cursor))
            seen.extend(r["ts"] for r in page.items)
            if page.next_cursor is None:
                break
            cursor = decode_cursor(page.next_cursor)
    assert seen == [float(i) for i in range(24, -1, -1)]


def test_one_firing_alert_per_fingerprint_is_enforced_by_the_database(store):
    with store.begin() as conn:
        repository.insert_series(conn, SERIES, now=1.0)
        first = repository.insert_alert(conn, _alert("fp1", 0))
    with pytest.raises(IntegrityError):
        with store.begin() as conn:
            repository.insert_alert(conn, _alert("fp1", 0))
    with store.begin() as conn:
        repository.update_alert(conn, first, {"state": "resolved", "resolved_at": 5.0})
        second = repository.insert_alert(conn, _alert("fp1", 0))  # fine once the first resolved
        assert second != first
        assert [a["id"] for a in repository.firing_alerts(conn)] == [second]
        assert [a["id"] for a in repository.list_alerts(conn, ListQuery(state="resolved")).items] == [first]


def test_alert_time_range_selects_alerts_active_in_it(store):
    with store.begin() as conn:
        repository.insert_series(conn, SERIES, now=1.0)
        early = repository.insert_alert(conn, {**_alert("a", 0), "first_seen": 10.0, "last_seen": 20.0})
        late = repository.insert_alert(conn, {**_alert("b", 1), "first_seen": 50.0, "last_seen": 60.0})
        assert [a["id"] for a in repository.list_alerts(conn, ListQuery(start=15.0, end=30.0)).items] == [early]
        assert [a["id"] for a in repository.list_alerts(conn, ListQuery(start=55.0)).items] == [late]
        assert [a["id"] for a in repository.list_alerts(conn, ListQuery(labels={"host": "b"})).items] == [late]


def test_audit_log_appends_and_lists_newest_first(store):
    with store.begin() as conn:
        repository.append_audit(
            conn, [{"ts": float(i), "actor": "pipeline", "action": "alert.opened", "subject": f"alert:{i}", "detail": {"i": i}} for i in range(3)]
        )
        rows = repository.list_audit(conn, ListQuery()).items
    assert [r["subject"] for r in rows] == ["alert:2", "alert:1", "alert:0"]
    assert rows[0]["detail"] == {"i": 2}


def test_cursor_encoding_round_trips_and_rejects_garbage():
    assert decode_cursor(encode_cursor(12345)) == 12345
    for bad in ("zzz", "aWQ6eA", encode_cursor(1)[:-1] + "!"):
        with pytest.raises(CursorError):
            decode_cursor(bad)
