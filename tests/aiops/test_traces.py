"""TraceMonitor: spans → RED and edge points of interned series, map updates, the upward detection rule."""

from __future__ import annotations

import numpy as np

from aiops.settings import DetectionSettings, TracesSettings
from aiops.topology import ServiceMap
from aiops.traces import UPWARD_SELECTOR, TraceMonitor, with_trace_rules
from detectors.red import SpanBatch
from ingest.registry import SeriesRegistry


def _spans(rows) -> SpanBatch:
    """rows: (span id, parent id, service, operation, end s, duration ms, error)"""
    cols = list(zip(*rows))
    return SpanBatch(*(np.array(c, dtype=object) for c in cols[:4]), np.array(cols[4], dtype=float),
                     np.array(cols[5], dtype=float), np.array(cols[6], dtype=bool))


def test_closed_intervals_become_points_of_named_series_and_edges_reach_the_map_once():
    registry = SeriesRegistry()
    services = ServiceMap()
    monitor = TraceMonitor(TracesSettings(interval_s=10, grace_s=0), registry, services)
    rows = [r for k in range(10) for r in (
        (f"a{k}", "", "checkout", "GET /cart", 100.0 + k, 30.0, False),
        (f"b{k}", f"a{k}", "payments", "charge", 100.0 + k, 20.0, k == 0))]
    batch, new = monitor.observe(_spans(rows))
    assert len(batch) == 0 and [(e.caller, e.callee, e.first_seen) for e in new] == [("checkout", "payments", 100.0)]
    batch, new = monitor.observe(_spans([("c", "", "checkout", "GET /cart", 111.0, 30.0, False)]))
    assert new == []  # known edge
    points = {registry.key(int(s)): v for s, v in zip(batch.series_id, batch.value)}
    assert points[("span_rate", (("operation", "charge"), ("service", "payments")))] == 1.0
    assert points[("span_error_ratio", (("operation", "charge"), ("service", "payments")))] == 0.1
    assert points[("span_latency_p99_ms", (("operation", "GET /cart"), ("service", "checkout")))] == 30.0
    edge = (("callee", "payments"), ("caller", "checkout"), ("service", "payments"))
    assert points[("edge_call_rate", edge)] == 1.0 and points[("edge_error_ratio", edge)] == 0.1
    assert points[("edge_latency_p95_ms", edge)] == 20.0
    assert set(batch.ts) == {110.0} and len(batch) == 2 * 5 + 3
    (traced,) = services.edges()
    assert (traced.calls, traced.errors, traced.call_rate, traced.p95_ms) == (10, 1, 1.0, 20.0)


def test_series_past_the_limit_are_dropped_not_fatal():
    registry = SeriesRegistry(max_series=2)
    monitor = TraceMonitor(TracesSettings(interval_s=10, grace_s=0), registry, ServiceMap())
    monitor.observe(_spans([("a", "", "checkout", "GET /cart", 100.0, 30.0, False)]))
    batch, _ = monitor.observe(_spans([("b", "", "checkout", "GET /cart", 111.0, 30.0, False)]))
    assert len(batch) == 2 and len(registry) == 2


def test_the_upward_rule_follows_the_default_detector_and_comes_after_the_users_rules():
    detection = DetectionSettings.model_validate({"default": {"detector": "ewma_zscore", "params": {"alpha": 0.1}},
                                                  "rules": [{"selector": '{service="db"}', "detector": "robust_mad"}]})
    rules = with_trace_rules(detection, TracesSettings()).rules
    assert [r.selector for r in rules] == ['{service="db"}', UPWARD_SELECTOR]
    assert rules[1].detector == "ewma_zscore" and rules[1].params == {"alpha": 0.1, "direction": "up"}
    assert with_trace_rules(detection, TracesSettings(watch_up=False)) is detection


def test_the_map_is_saved_when_due_and_restored(tmp_path):
    from aiops.store import StoreEngine

    store = StoreEngine(f"sqlite:///{tmp_path / 'aiops.db'}")
    store.migrate()
    services = ServiceMap()
    monitor = TraceMonitor(TracesSettings(), SeriesRegistry(), services, save_every_s=60)
    with store.begin() as conn:
        monitor.load(conn, 100.0)  # nothing saved yet: an empty map
    assert not monitor.save_due(150.0) and monitor.save_due(160.0)
    services.observe(("a", "b"), calls=2, errors=0, first_seen=1.0, last_seen=2.0)
    with store.begin() as conn:
        monitor.save(conn, 160.0)
    assert not monitor.save_due(200.0)
    restored = ServiceMap()
    with store.begin() as conn:
        TraceMonitor(TracesSettings(), SeriesRegistry(), restored).load(conn, 300.0)
    assert restored.adjacency() == {"a": ["b"]} and restored.edges()[0].calls == 2
    store.close()
