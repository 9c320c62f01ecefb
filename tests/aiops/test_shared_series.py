"""Several processes writing one store: series ids resolved by identity, alerts deduplicated in the store."""

from __future__ import annotations

from aiops.alerts import AlertManager, AnomalyRecord
from aiops.shared_series import StoreSeries
from aiops.store import repository
from ingest import SeriesRegistry, series_key


def _record(sid: int, key, ts: float = 100.0) -> AnomalyRecord:
    return AnomalyRecord(sid, key, ts, 9.0, 1.0, 0.0, 2.0, 0.9, "critical", "ewma_zscore", {})


def test_two_processes_get_one_id_per_identity_and_dense_ids(store):
    a, b = SeriesRegistry(), SeriesRegistry()
    x, y, z = (series_key("cpu", {"host": h}) for h in "xyz")
    a_ids = [a.intern(k) for k in (x, y)]  # local ids 0, 1
    b_ids = [b.intern(k) for k in (z, y)]  # local ids 0, 1: the same numbers, other series
    sa, sb = StoreSeries(a), StoreSeries(b)
    with store.begin() as conn:
        ra = sa.resolve(conn, [_record(a_ids[0], x), _record(a_ids[1], y)], 1.0)
    sa.commit()
    with store.begin() as conn:
        rb = sb.resolve(conn, [_record(b_ids[0], z), _record(b_ids[1], y)], 1.0)
    sb.commit()
    assert [r.series_id for r in ra] == [0, 1]
    assert [r.series_id for r in rb] == [2, 1]  # y reused by identity, z gets the next id
    with store.begin() as conn:
        assert repository.load_series(conn) == [(0, x), (1, y), (2, z)]


def test_ids_of_a_rolled_back_transaction_are_forgotten(store):
    reg = SeriesRegistry()
    key = series_key("cpu", {"host": "x"})
    sid = reg.intern(key)
    shared = StoreSeries(reg)
    try:
        with store.begin() as conn:
            shared.resolve(conn, [_record(sid, key)], 1.0)
            raise RuntimeError("the batch failed")
    except RuntimeError:
        shared.rollback()
    assert shared.store_id(sid) is None
    with store.begin() as conn:
        assert repository.load_series(conn) == []


def test_a_shared_alert_manager_updates_an_alert_another_process_opened(store):
    reg = SeriesRegistry()
    key = series_key("cpu", {"host": "x"})
    shared = StoreSeries(reg)
    first, second = AlertManager(300.0, shared=True), AlertManager(300.0, shared=True)
    with store.begin() as conn:
        second.load(conn)  # loaded before the alert exists, as a worker that took the partition earlier
        (alert_id,), events = first.observe(conn, shared.resolve(conn, [_record(reg.intern(key), key)], 1.0), 1.0)
    shared.commit()
    assert [e.event for e in events] == ["opened"]
    with store.begin() as conn:
        ids, events = second.observe(conn, shared.resolve(conn, [_record(0, key, ts=110.0)], 2.0), 2.0)
    assert ids == [alert_id] and [e.event for e in events] == ["updated"]
    with store.begin() as conn:
        (row,) = repository.firing_alerts(conn)
    assert row["count"] == 2


def test_a_workers_watch_follows_the_series_under_its_own_id(store):
    import numpy as np
    from sqlalchemy import insert, select

    from aiops.store.schema import executions, verification_watches
    from aiops.watches import WatchKeeper
    from detectors import MetricBatch

    reg = SeriesRegistry()
    reg.intern(series_key("mem", {}))  # local id 0; the watched series will be local 1, store 0
    key = series_key("cpu", {"host": "x"})
    local = reg.intern(key)
    shared = StoreSeries(reg)
    with store.begin() as conn:
        (store_id,) = [r.series_id for r in shared.resolve(conn, [_record(local, key)], 1.0)]
        execution = conn.execute(insert(executions).returning(executions.c.id), [{
            "runbook": "rb", "target": "t", "state": "verifying", "dry_run": True, "context": {}, "requested_by": "test",
            "reason": "", "created_at": 1.0, "updated_at": 1.0}]).scalar_one()
        conn.execute(insert(verification_watches), [{"execution_id": execution, "purpose": "verify", "series_id": store_id,
                                                     "max_score": 0.5, "lower": None, "upper": None}])
    shared.commit()
    assert (store_id, local) == (0, 1)
    keeper = WatchKeeper(shared.local_ids)
    with store.begin() as conn:
        keeper.refresh(conn)
        assert shared.local_ids(conn, np.array([0, 7])).tolist() == [1, -1]  # 7: no such series
    batch = MetricBatch.from_arrays([0, 1], [10.0, 10.0], [5.0, 0.2])  # local 0 is another series
    assert keeper.observe(store.begin, batch, batch.value, np.array([0.9, 0.1]), np.ones(2, bool)) == 1
    with store.begin() as conn:
        row = conn.execute(select(verification_watches)).first()
    assert (row.normal_since, row.last_value) == (10.0, 0.2)
