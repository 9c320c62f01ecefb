"""Entity monitoring through the service's parts: rows per host, an odd host alerted per entity."""

from __future__ import annotations

import numpy as np

from aiops.entities import EntityMonitor
from aiops.settings import EntityRule
from detectors import MetricBatch
from ingest import SeriesRegistry, series_key

RULE = EntityRule(name="hosts", group_by=["host"], features=["cpu", "req"], interval_s=60, refit_every_s=1e9, min_rows=32)


def _feed(monitor, registry, rng, now, odd_host=None):
    ids, values = [], []
    for h in range(20):
        req = rng.uniform(100, 1000)
        cpu = req * 0.05 + rng.normal(0, 1)
        if h == odd_host:
            cpu, req = 48.0, 110.0  # busy CPU, idle traffic
        for name, value in (("cpu", cpu), ("req", req)):
            ids.append(registry.intern(series_key(name, {"host": f"h{h}", "dc": "x"})))
            values.append(value)
    monitor.observe(MetricBatch.from_arrays(ids, np.full(len(ids), now), values))
    return monitor.tick(now)


def test_an_odd_host_becomes_one_entity_anomaly_with_attributions():
    registry = SeriesRegistry()
    registry.intern(series_key("unrelated", {"host": "h0"}))  # not a feature: ignored
    monitor = EntityMonitor([RULE], registry)
    rng = np.random.default_rng(0)
    now = 1_800_000_000.0
    for step in range(60):
        assert _feed(monitor, registry, rng, now + 60 * step) == []  # no model yet: nothing raised
    monitor.refit_now()
    normal = [r for step in range(60, 70) for r in _feed(monitor, registry, rng, now + 60 * step)]
    assert len(normal) <= 2
    records = _feed(monitor, registry, rng, now + 60 * 70, odd_host=7)
    odd = [r for r in records if r.explanation["entity"]["labels"] == {"host": "h7"}]
    assert len(odd) == 1
    record = odd[0]
    entity = record.explanation["entity"]
    assert entity["rule"] == "hosts" and set(entity["attributions"]) == {"cpu", "req"}
    assert abs(sum(entity["attributions"].values()) - 1) < 1e-9
    assert record.key[1] == (("dc", "x"), ("host", "h7"))  # attached to one of the host's series
    assert record.alert_key == ("entity:hosts", (("host", "h7"),))
    assert record.fingerprint != records[0].fingerprint or len(records) == 1


def test_interval_limits_how_often_entities_are_scored():
    registry = SeriesRegistry()
    monitor = EntityMonitor([RULE], registry)
    rng = np.random.default_rng(1)
    _feed(monitor, registry, rng, 1_800_000_000.0)
    before = len(monitor._groups[0].detector.training_rows())
    _feed(monitor, registry, rng, 1_800_000_010.0)  # within interval_s: not scored, not learned
    assert len(monitor._groups[0].detector.training_rows()) == before == 20
