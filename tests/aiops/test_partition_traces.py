"""The two span stages of a worker without a broker: callers resolved per trace partition, records held until
their intervals are emitted, intervals closed by the least watermark of the sources, state after a move."""

from __future__ import annotations

import numpy as np
from kafka import TopicPartition

from aiops.partition_traces import PartitionTraces, resolve
from aiops.settings import TracesSettings
from aiops.store import StoreEngine
from detectors.red import ParentIndex, SpanBatch
from ingest.registry import SeriesRegistry

BY_SERVICE = TopicPartition("sbs", 0)


def _spans(rows, caller=None) -> SpanBatch:
    """rows: (span id, parent id, service, operation, end s, duration ms, counted)"""
    cols = list(zip(*rows))
    obj = lambda c: np.array(c, dtype=object)  # noqa: E731
    return SpanBatch(obj(cols[0]), obj(cols[1]), obj(cols[2]), obj(cols[3]), np.array(cols[4], dtype=float),
                     np.array(cols[5], dtype=float), np.zeros(len(rows), dtype=bool), np.array(cols[6], dtype=bool),
                     caller=None if caller is None else obj(caller))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _traces(clock: Clock, n_sources: int = 2) -> PartitionTraces:
    settings = TracesSettings(interval_s=10, grace_s=0)
    return PartitionTraces(settings, SeriesRegistry(), "g", "spans", "sbs", n_sources, clock=clock)


def test_stage_one_keeps_requests_and_cross_service_calls_with_their_callers():
    spans = _spans([("r", "", "checkout", "GET", 100.0, 30.0, True),  # a root: a request
                    ("c", "r", "checkout", "POST /pay", 100.0, 25.0, False),  # a CLIENT span: dropped
                    ("p", "c", "payments", "charge", 100.0, 20.0, True)])  # a request, called by checkout
    out = resolve(ParentIndex(), spans)
    assert out.span_id.tolist() == ["r", "p"] and out.caller.tolist() == ["", "checkout"]


def test_a_record_is_held_until_its_intervals_close_under_every_sources_watermark():
    clock = Clock()
    traces = _traces(clock)
    early = _spans([("a", "", "svc", "op", 101.0, 5.0, True)], caller=[""])
    batch, _ = traces.aggregate(BY_SERVICE, "r1", early, source=0, watermark=101.0)
    assert not len(batch) and traces.release() == []
    ahead = _spans([("b", "", "svc", "op", 125.0, 6.0, True)], caller=[""])
    batch, _ = traces.aggregate(BY_SERVICE, "r2", ahead, source=0, watermark=125.0)
    assert not len(batch) and traces.release() == []  # source 1 has said nothing yet: it may be behind
    behind = _spans([("c", "", "svc", "op", 104.0, 7.0, True)], caller=[""])
    batch, _ = traces.aggregate(BY_SERVICE, "r3", behind, source=1, watermark=112.0)
    assert sorted(batch.ts.tolist()) == [110.0] * 5  # [100, 110) closed with both spans: rate, errors, 3 quantiles
    assert traces.release() == ["r1"]  # r2 waits for [120, 130); r3, behind it, waits in order
    clock.now += 21  # source 1 silent for interval + grace: left out; nothing came for that long: closed
    batch, _ = traces.close_idle(clock.now)
    assert set(batch.ts.tolist()) == {130.0} and traces.release() == ["r2", "r3"]


def test_a_new_owner_drops_replayed_spans_of_intervals_the_old_owner_emitted(tmp_path):
    store = StoreEngine(f"sqlite:///{tmp_path / 'a.db'}")
    store.migrate()
    clock = Clock()
    old = _traces(clock, n_sources=1)
    spans = _spans([("a", "", "svc", "op", 101.0, 5.0, True), ("p", "a", "db", "q", 101.0, 2.0, True)],
                   caller=["", "svc"])
    _, edges = old.aggregate(BY_SERVICE, "r1", spans, source=0, watermark=101.0)
    batch, _ = old.aggregate(BY_SERVICE, "r2", _spans([("b", "", "svc", "op", 115.0, 5.0, True)], caller=[""]),
                             source=0, watermark=115.0)
    assert len(batch) and [(e.caller, e.callee) for e in edges] == [("svc", "db")] and old.release() == ["r1"]
    with store.begin() as conn:
        old.save(conn, [BY_SERVICE], clock.now)
    new = _traces(clock, n_sources=1)
    with store.begin() as conn:
        new.load(conn, [BY_SERVICE], clock.now)
    monitor = new.monitors[BY_SERVICE]
    assert monitor.aggregator.closed_before == 115.0 and monitor.service_map.known("svc", "db")
    batch, edges = new.aggregate(BY_SERVICE, "r1", spans, source=0, watermark=101.0)  # replayed after a crash
    assert not len(batch) and edges == [] and monitor.aggregator.late == 2 and new.release() == ["r1"]
    batch, _ = new.aggregate(BY_SERVICE, "r2", _spans([("b", "", "svc", "op", 115.0, 5.0, True)], caller=[""]),
                             source=0, watermark=115.0)  # held by the old owner: its interval is open again here
    assert not len(batch) and monitor.aggregator.late == 2 and monitor.aggregator.has_open() and new.release() == []
    store.close()


def test_stage_one_holds_a_child_until_its_parent_comes_or_the_partition_goes_quiet():
    clock = Clock()
    traces = _traces(clock)  # grace 0: no waiting
    traces.settings = TracesSettings(interval_s=10, grace_s=30, parent_wait_s=5)
    tp = TopicPartition("spans", 0)
    child = _spans([("p1", "c1", "payments", "charge", 100.0, 20.0, True)])
    out, watermark = traces.resolve(tp, child)
    assert len(out) == 0 and watermark == 100.0  # its parent may come next
    parent = _spans([("c1", "r1", "checkout", "POST /pay", 100.2, 25.0, False), ("r1", "", "checkout", "GET", 100.3, 30.0, True)])
    out, _ = traces.resolve(tp, parent)
    assert sorted(zip(out.span_id.tolist(), out.caller.tolist())) == [("p1", "checkout"), ("r1", "")]
    orphan = _spans([("q1", "outside", "search", "query", 101.0, 9.0, True)])
    out, _ = traces.resolve(tp, orphan)
    assert len(out) == 0 and traces.release_waiting(clock.now) == []  # not quiet yet
    clock.now += 5
    ((released_tp, released, mark),) = traces.release_waiting(clock.now)
    assert released_tp == tp and released.span_id.tolist() == ["q1"] and released.caller.tolist() == [""] and mark == 101.0
