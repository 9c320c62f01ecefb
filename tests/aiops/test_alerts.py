"""Alert lifecycle on the store: dedup by fingerprint, quiet-period resolution, flapping held open."""

from __future__ import annotations

from aiops.alerts import AlertManager, AnomalyRecord
from aiops.store import repository

KEY = ("cpu", (("host", "a"),))


def _record(ts: float, severity: str = "warning") -> AnomalyRecord:
    return AnomalyRecord(0, KEY, ts, 99.0, 50.0, 40.0, 60.0, 0.7, severity, "ewma_zscore", {"detectors": {}})


def _setup(store):
    with store.begin() as conn:
        repository.insert_series(conn, [(0, KEY)], now=0.0)


def test_one_alert_per_fingerprint_updated_then_resolved(store):
    _setup(store)
    manager = AlertManager(resolve_after_s=300)
    with store.begin() as conn:
        manager.load(conn)
        ids, events = manager.observe(conn, [_record(1.0), _record(2.0, "critical")], now=1000.0)
        assert ids[0] == ids[1] and [e.event for e in events] == ["opened"]
        ids2, events = manager.observe(conn, [_record(3.0)], now=1100.0)
        assert ids2 == ids[:1] and [e.event for e in events] == ["updated"]
        assert manager.resolve_quiet(conn, now=1399.0) == []
        assert [e.event for e in manager.resolve_quiet(conn, now=1400.0)] == ["resolved"]
        alert = repository.list_alerts(conn, repository.ListQuery()).items[0]
    assert alert["count"] == 3 and alert["severity"] == "critical" and alert["state"] == "resolved"


def test_an_alert_that_keeps_reopening_is_flapping_and_held_open_longer(store):
    _setup(store)
    manager = AlertManager(resolve_after_s=100, flap_opens=3, flap_window_s=3600, flap_hold=4)
    now = 10_000.0
    with store.begin() as conn:
        for round_ in range(3):
            _, events = manager.observe(conn, [_record(now)], now=now)
            opened = events[0]
            assert opened.flapping is (round_ == 2)
            if round_ < 2:
                assert manager.resolve_quiet(conn, now=now + 100)  # resolves after the usual quiet
            now += 200
        assert manager.resolve_quiet(conn, now=now - 200 + 100) == []  # flapping: 100 s is not enough
        assert manager.resolve_quiet(conn, now=now - 200 + 400)  # 4 × 100 s is
        rows = repository.list_alerts(conn, repository.ListQuery()).items
    assert [r["flapping"] for r in rows] == [True, False, False]


def test_openings_spread_beyond_the_window_are_not_flapping(store):
    _setup(store)
    manager = AlertManager(resolve_after_s=100, flap_opens=3, flap_window_s=1000, flap_hold=4)
    with store.begin() as conn:
        for k in range(4):
            _, events = manager.observe(conn, [_record(k)], now=10_000.0 + 600 * k)
            assert not events[0].flapping
            manager.resolve_quiet(conn, now=10_000.0 + 600 * k + 100)


def test_inhibition_mutes_warnings_beneath_a_critical_alert_of_the_same_cluster(store):
    from aiops.settings import InhibitRule

    keys = {
        0: ("cpu", (("cluster", "eu-1"), ("host", "a"))),
        1: ("lat", (("cluster", "eu-1"), ("host", "b"))),
        2: ("lat", (("cluster", "us-1"), ("host", "c"))),
    }
    with store.begin() as conn:
        repository.insert_series(conn, list(keys.items()), now=0.0)
    manager = AlertManager(resolve_after_s=300, inhibit=[InhibitRule(equal=["cluster"])])

    def rec(sid, severity):
        return AnomalyRecord(sid, keys[sid], 1.0, 1.0, 0.0, -1.0, 1.0, 0.9, severity, "ewma_zscore", {})

    with store.begin() as conn:
        _, opened = manager.observe(conn, [rec(0, "critical")], now=100.0)
        _, events = manager.observe(conn, [rec(1, "warning"), rec(2, "warning")], now=101.0)
    by_id = {e.alert_id: e for e in events}
    critical_id = opened[0].alert_id
    assert opened[0].silenced_by is None
    assert [e.silenced_by for e in events if e.labels["cluster"] == "eu-1"] == [f"inhibited:alert:{critical_id}"]
    assert [e.silenced_by for e in events if e.labels["cluster"] == "us-1"] == [None]
    assert len(by_id) == 2  # both recorded
