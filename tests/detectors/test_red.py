"""Traces → RED metrics and service-map edges: known answers, late spans, parents from earlier batches."""

from __future__ import annotations

import numpy as np

from detectors.red import RedAggregator, SpanBatch, quantiles_by_group


def _spans(rows) -> SpanBatch:
    """rows: (span id, parent id, service, operation, end s, duration ms, error)"""
    cols = list(zip(*rows))
    return SpanBatch(np.array(cols[0], dtype=object), np.array(cols[1], dtype=object), np.array(cols[2], dtype=object),
                     np.array(cols[3], dtype=object), np.array(cols[4], dtype=float), np.array(cols[5], dtype=float),
                     np.array(cols[6], dtype=bool))


def test_nearest_rank_quantiles_per_group_match_a_per_group_reference():
    rng = np.random.default_rng(0)
    group = rng.integers(0, 7, 5000)
    values = rng.exponential(100, 5000)
    groups, counts, q = quantiles_by_group(group, values)
    for g, n, row in zip(groups, counts, q):
        mine = np.sort(values[group == g])
        expected = [mine[int(np.ceil(p * n)) - 1] for p in (0.5, 0.95, 0.99)]
        np.testing.assert_array_equal(row, expected)


def test_rate_error_ratio_and_latency_per_service_operation_and_interval():
    agg = RedAggregator(interval_s=60, grace_s=10)
    rows = [(f"s{i}", "", "checkout", "GET /cart", 1_000_000_000 + i * 0.5, float(i + 1), i % 10 == 0) for i in range(100)]
    rows += [("p1", "", "search", "query", 1_000_000_030.0, 40.0, False)]
    first, new_edges = agg.add(_spans(rows))
    # intervals are aligned to the minute: [..959_960, ..000_020) holds spans 0..39 and is closed (the
    # latest span ends at ..049.5, past its end plus the 10 s grace); [..020, ..080) is still open
    assert new_edges == [] and first.service == ["checkout"] and first.interval_end[0] == 1_000_000_020.0
    assert (first.rate[0], first.error_ratio[0], first.p50_ms[0], first.p95_ms[0]) == (40 / 60, 4 / 40, 20.0, 38.0)
    points, _ = agg.add(_spans([("late", "", "checkout", "GET /cart", 1_000_000_100.0, 5.0, False)]))
    assert points is not None
    by = {(s, o): i for i, (s, o) in enumerate(zip(points.service, points.operation))}
    i = by[("checkout", "GET /cart")]
    # interval [1_000_000_020, 1_000_000_080): spans i = 40..99 end in it (end = 1e9 + i/2 s)
    assert points.interval_end[i] == 1_000_000_080.0
    assert points.rate[i] == 60 / 60 and points.error_ratio[i] == 6 / 60  # i % 10 == 0 among 40..99
    assert (points.p50_ms[i], points.p95_ms[i], points.p99_ms[i]) == (70.0, 97.0, 100.0)  # durations 41..100
    assert points.rate[by[("search", "query")]] == 1 / 60
    rest = agg.flush()
    assert sorted(set(rest.service)) == ["checkout"]


def test_cross_service_edges_with_parents_from_earlier_batches_and_new_edge_events():
    agg = RedAggregator(interval_s=60)
    _, new = agg.add(_spans([("a", "", "gateway", "GET /", 100.0, 50.0, False),
                             ("b", "a", "checkout", "GET /cart", 100.0, 30.0, False),
                             ("c", "b", "checkout", "db.query", 100.0, 5.0, False)]))  # same service: no edge
    assert new == [("gateway", "checkout")]
    _, new = agg.add(_spans([("d", "b", "payments", "charge", 101.0, 20.0, True),   # parent b from the last batch
                             ("e", "b", "payments", "charge", 102.0, 80.0, False),
                             ("f", "zz", "search", "q", 102.0, 1.0, False)]))        # unknown parent: no edge
    assert new == [("checkout", "payments")]
    edge = agg.edges[("checkout", "payments")]
    assert (edge.calls, edge.errors, edge.error_ratio, edge.p95_ms) == (2, 1, 0.5, 80.0)
    _, new = agg.add(_spans([("g", "b", "payments", "charge", 103.0, 10.0, False)]))
    assert new == [] and agg.edges[("checkout", "payments")].calls == 3


def test_span_id_memory_is_bounded():
    agg = RedAggregator(max_span_ids=100)
    rows = [(f"id{i}", "", "svc", "op", 10.0 + i, 1.0, False) for i in range(1000)]
    agg.add(_spans(rows))
    assert len(agg._parents) == 100 and "id999" in agg._parents and "id0" not in agg._parents


def test_a_span_of_a_closed_interval_is_dropped_as_late_not_emitted_twice():
    agg = RedAggregator(interval_s=10, grace_s=0)
    first, _ = agg.add(_spans([("a", "", "svc", "op", 101.0, 5.0, False), ("b", "", "svc", "op", 115.0, 7.0, False)]))
    assert first.interval_end.tolist() == [110.0] and agg.closed_before == 115.0
    again, _ = agg.add(_spans([("late", "", "svc", "op", 104.0, 9.0, False)]))
    assert again is None and agg.late == 1
    rest = agg.flush()
    assert rest.interval_end.tolist() == [120.0] and rest.p50_ms.tolist() == [7.0]
    agg.add(_spans([("later", "", "svc", "op", 119.0, 9.0, False)]))  # flushed intervals are closed too
    assert agg.late == 2 and agg.flush() is None


def test_callers_resolved_upstream_give_the_same_edges_as_parent_ids():
    rows = [("r", "", "checkout", "GET", 100.0, 30.0, False), ("p", "r", "payments", "charge", 100.5, 20.0, True)]
    by_ids = RedAggregator(interval_s=10, grace_s=0)
    _, new = by_ids.add(_spans(rows))
    resolved = _spans([(sid, "", svc, op, end, ms, err) for sid, _, svc, op, end, ms, err in rows])
    resolved = SpanBatch(resolved.span_id, resolved.parent_id, resolved.service, resolved.operation, resolved.end_s,
                         resolved.duration_ms, resolved.error, caller=np.array(["", "checkout"], dtype=object))
    upstream = RedAggregator(interval_s=10, grace_s=0)
    _, new_upstream = upstream.add(resolved)
    assert new == new_upstream == [("checkout", "payments")]
    a, b = by_ids.flush(), upstream.flush()
    assert (a.edges.rate.tolist(), a.edges.error_ratio.tolist()) == (b.edges.rate.tolist(), b.edges.error_ratio.tolist())


def test_per_interval_edge_figures_are_measured_on_the_callee_side():
    agg = RedAggregator(interval_s=10, grace_s=0)
    rows = []
    for i in range(20):  # checkout (SERVER) → its CLIENT span → payments (SERVER), 10 traces per interval
        t = 100.0 + i * 1.0
        rows += [(f"r{i}", "", "checkout", "GET /cart", t, 30.0, False),
                 (f"c{i}", f"r{i}", "checkout", "POST /pay", t, 25.0, False),
                 (f"p{i}", f"c{i}", "payments", "charge", t, 20.0 + i, i == 3)]
    counted = np.array([not r[0].startswith("c") for r in rows])  # CLIENT spans: not requests served
    spans = _spans(rows)
    spans = SpanBatch(spans.span_id, spans.parent_id, spans.service, spans.operation, spans.end_s,
                      spans.duration_ms, spans.error, counted)
    points, new = agg.add(spans)
    assert new == [("checkout", "payments")]
    assert sorted(set(zip(points.service, points.operation))) == [("checkout", "GET /cart"), ("payments", "charge")]
    edges = points.edges  # interval [100, 110) closed by the spans up to 119
    assert (edges.caller, edges.callee, edges.interval_end.tolist()) == (["checkout"], ["payments"], [110.0])
    assert (edges.rate[0], edges.error_ratio[0], edges.p95_ms[0]) == (1.0, 0.1, 29.0)  # durations 20..29
    rest = agg.flush()
    assert rest.edges.interval_end.tolist() == [120.0] and rest.edges.p95_ms[0] == 39.0


def test_a_child_sent_before_its_parent_waits_for_it_and_lands_on_the_edge():
    child_first = [("p1", "c1", "payments", "charge", 100.0, 20.0, False)]  # the callee's SERVER span ends first
    parent_later = [("r1", "", "checkout", "GET", 100.4, 30.0, False), ("c1", "r1", "checkout", "POST /pay", 100.3, 25.0, False)]
    waits = RedAggregator(interval_s=10, grace_s=10, parent_wait_s=5)
    _, none_yet = waits.add(_spans(child_first))
    assert none_yet == [] and waits._parents.waiting == 1
    _, new = waits.add(_spans(parent_later))
    assert new == [("checkout", "payments")] and waits._parents.waiting == 0
    points = waits.flush()
    assert sorted(zip(points.service, points.operation)) == [("checkout", "GET"), ("checkout", "POST /pay"), ("payments", "charge")]
    assert points.edges.caller == ["checkout"] and points.edges.rate.tolist() == [0.1]
    at_once = RedAggregator(interval_s=10, grace_s=10, parent_wait_s=0)  # the old behaviour: the edge is missed
    at_once.add(_spans(child_first))
    _, missed = at_once.add(_spans(parent_later))
    assert missed == [] and at_once.flush().edges.caller == []


def test_a_span_whose_parent_never_comes_is_counted_once_its_wait_is_over():
    agg = RedAggregator(interval_s=10, grace_s=10, parent_wait_s=5)
    agg.add(_spans([("s1", "gateway-span", "search", "query", 101.0, 8.0, False)]))  # called from outside the traces
    agg.add(_spans([("s2", "", "search", "query", 104.0, 9.0, False)]))
    assert agg._parents.waiting == 1  # the spans seen reach 104 < 101 + 5
    agg.add(_spans([("s3", "", "search", "query", 106.5, 7.0, False)]))
    assert agg._parents.waiting == 0
    points = agg.flush()
    assert points.rate.tolist() == [0.3] and points.edges.caller == []  # three requests in [100, 110), no edge
