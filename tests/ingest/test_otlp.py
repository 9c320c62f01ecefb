"""Decoding of OTLP/HTTP JSON metrics, with bodies shaped as the Collector's otlphttp exporter sends them.

The Collector (pdata JSON marshaller) writes int64 as decimal strings, enums as integers, leaves out
fields holding their default, and keeps resource → scope → metric nesting.
"""

from __future__ import annotations

import gzip
import math

import msgspec
import numpy as np
import pytest

from ingest import SeriesRegistry
from ingest.otlp import OtlpBodyError, OtlpMetricsDecoder, bucket_quantile, decompress, quantile_name

NOW = 1_800_000_000.0
T0 = int(NOW - 60) * 10**9  # ns
START = int(NOW - 3600) * 10**9
RESOURCE = {"attributes": [
    {"key": "service.name", "value": {"stringValue": "checkout"}},
    {"key": "host.name", "value": {"stringValue": "node-1"}},
]}


@pytest.fixture
def decoder() -> OtlpMetricsDecoder:
    return OtlpMetricsDecoder(SeriesRegistry(max_series=1000), max_future_skew_s=300)


def _request(*metrics: dict) -> bytes:
    return msgspec.json.encode({"resourceMetrics": [{
        "resource": RESOURCE,
        "scopeMetrics": [{"scope": {"name": "otelcol/hostmetricsreceiver/cpu", "version": "0.98.0"},
                          "metrics": list(metrics)}],
        "schemaUrl": "https://opentelemetry.io/schemas/1.9.0",
    }]})


def _attrs(**kv: str) -> list[dict]:
    return [{"key": k.replace("__", "."), "value": {"stringValue": v}} for k, v in kv.items()]


def _points(decoder: OtlpMetricsDecoder, out) -> list[tuple[str, dict, float, float]]:
    reg = decoder.registry
    return [
        (reg.name(int(s)), reg.labels(int(s)), float(t), float(v))
        for s, t, v in zip(out.batch.series_id, out.batch.ts, out.batch.value)
    ]


def _sum(name: str, points: list[dict], temporality: int = 2, monotonic: bool = True) -> dict:
    data = {"dataPoints": points, "aggregationTemporality": temporality}
    if monotonic:
        data["isMonotonic"] = True
    return {"name": name, "unit": "1", "sum": data}


def test_gauge_with_as_double_and_string_as_int_and_labels(decoder):
    body = _request({
        "name": "system.memory.utilization", "unit": "1",
        "gauge": {"dataPoints": [
            {"attributes": _attrs(state="used"), "timeUnixNano": str(T0), "asDouble": 0.42},
            {"attributes": _attrs(state="free"), "startTimeUnixNano": str(START), "timeUnixNano": str(T0), "asInt": "9007199254740993"},
        ]},
    })
    out = decoder.decode(body, NOW)
    assert out.total == 2 and out.rejected == []
    labels = {"service": "checkout", "service_name": "checkout", "host_name": "node-1"}
    assert _points(decoder, out) == [
        ("system_memory_utilization", {**labels, "state": "used"}, NOW - 60, 0.42),
        ("system_memory_utilization", {**labels, "state": "free"}, NOW - 60, 9007199254740993.0),
    ]


def test_attribute_values_of_every_kind_become_text(decoder):
    attrs = [
        {"key": "i", "value": {"intValue": "42"}},
        {"key": "d", "value": {"doubleValue": 1.5}},
        {"key": "b", "value": {"boolValue": True}},
        {"key": "a", "value": {"arrayValue": {"values": [{"stringValue": "x"}, {"intValue": "2"}]}}},
        {"key": "k.v", "value": {"kvlistValue": {"values": [{"key": "z", "value": {"boolValue": False}}]}}},
        {"key": "1st", "value": {}},
        {"key": "_x", "value": {"stringValue": "u"}},
    ]
    out = decoder.decode(_request({"name": "m", "gauge": {"dataPoints": [
        {"attributes": attrs, "timeUnixNano": str(T0), "asDouble": 1}]}}), NOW)
    labels = _points(decoder, out)[0][1]
    assert {k: labels[k] for k in ("i", "d", "b", "a", "k_v", "key_1st", "key_x")} == {
        "i": "42", "d": "1.5", "b": "true", "a": '["x",2]', "k_v": '{"z":false}', "key_1st": "", "key_x": "u"}


def test_cumulative_monotonic_sum_becomes_a_rate_across_requests_and_survives_a_reset(decoder):
    def counter(t: int, value: str, start: int = START) -> bytes:
        return _request(_sum("http.server.requests", [
            {"attributes": _attrs(route="/pay"), "startTimeUnixNano": str(start), "timeUnixNano": str(t), "asInt": value}]))

    first = decoder.decode(counter(T0, "1000"), NOW)
    assert first.total == 1 and first.rejected == [] and len(first.batch) == 0  # primes the state
    decoder.commit(first)
    second = decoder.decode(counter(T0 + 10 * 10**9, "1500"), NOW)
    decoder.commit(second)
    assert [(n, v) for n, _, _, v in _points(decoder, second)] == [("http_server_requests_rate", 50.0)]
    # value drop, same start: Prometheus' reading — the new value is the increase since the previous point
    dropped = decoder.decode(counter(T0 + 20 * 10**9, "100"), NOW)
    decoder.commit(dropped)
    assert dropped.batch.value.tolist() == [10.0]
    # new start time: the process restarted at `start`; the value counted since then
    restart = T0 + 25 * 10**9
    restarted = decoder.decode(counter(T0 + 30 * 10**9, "50", start=restart), NOW)
    decoder.commit(restarted)
    assert restarted.batch.value.tolist() == [10.0]
    # a retried request (same point again) adds nothing and rejects nothing
    again = decoder.decode(counter(T0 + 30 * 10**9, "50", start=restart), NOW)
    assert len(again.batch) == 0 and again.rejected == []


def test_uncommitted_state_is_not_kept_so_a_retry_is_rated_again(decoder):
    def counter(t: int, value: float) -> bytes:
        return _request(_sum("c", [{"startTimeUnixNano": str(START), "timeUnixNano": str(t), "asDouble": value}]))

    decoder.commit(decoder.decode(counter(T0, 10), NOW))
    refused = decoder.decode(counter(T0 + 10**9, 20), NOW)  # say the bus was full: no commit
    assert refused.batch.value.tolist() == [10.0]
    assert decoder.decode(counter(T0 + 10**9, 20), NOW).batch.value.tolist() == [10.0]


def test_two_points_of_one_counter_in_one_request(decoder):
    points = [{"startTimeUnixNano": str(START), "timeUnixNano": str(T0 + k * 10**9), "asDouble": v}
              for k, v in ((0, 5.0), (2, 9.0), (4, 13.0))]
    out = decoder.decode(_request(_sum("c", points)), NOW)
    assert out.batch.value.tolist() == [2.0, 2.0]


def test_delta_sum_is_value_over_interval_and_non_monotonic_sum_is_a_gauge(decoder):
    body = _request(
        _sum("queue.added", [{"startTimeUnixNano": str(T0 - 10 * 10**9), "timeUnixNano": str(T0), "asInt": "30"}], temporality=1),
        _sum("queue.size", [{"startTimeUnixNano": str(START), "timeUnixNano": str(T0), "asInt": "7"}], monotonic=False),
        _sum("no.start", [{"timeUnixNano": str(T0), "asInt": "1"}], temporality=1),
    )
    out = decoder.decode(body, NOW)
    assert [(n, v) for n, _, _, v in _points(decoder, out)] == [("queue_added_rate", 3.0), ("queue_size", 7.0)]
    assert [(r.index, r.field) for r in out.rejected] == [(2, "startTimeUnixNano")]


def _histogram(points: list[dict], temporality: int = 2) -> dict:
    return {"name": "http.server.duration", "unit": "ms",
            "histogram": {"dataPoints": points, "aggregationTemporality": temporality}}


def _hpoint(t: int, counts: list[int], bounds=(10.0, 20.0, 40.0), start: int = START) -> dict:
    return {"startTimeUnixNano": str(start), "timeUnixNano": str(t), "count": str(sum(counts)),
            "sum": 1.0, "bucketCounts": [str(c) for c in counts], "explicitBounds": list(bounds)}


def test_delta_histogram_quantiles_have_the_known_answers(decoder):
    # 100 observations: 50 in (-inf,10], 30 in (10,20], 20 in (20,40], 0 above
    out = decoder.decode(_request(_histogram([_hpoint(T0, [50, 30, 20, 0], start=T0 - 10 * 10**9)], temporality=1)), NOW)
    got = {n: v for n, _, _, v in _points(decoder, out)}
    # p50: rank 50 ends the first bucket → 10; p95: rank 95 → 20 + 20 × 15/20 = 35; p99: 20 + 20 × 19/20 = 39
    assert got == pytest.approx({"http_server_duration_count_rate": 10.0, "http_server_duration_p50": 10.0,
                                 "http_server_duration_p95": 35.0, "http_server_duration_p99": 39.0})


def test_cumulative_histogram_is_differenced_between_points(decoder):
    decoder.commit(decoder.decode(_request(_histogram([_hpoint(T0, [10, 0, 0, 0])])), NOW))
    out = decoder.decode(_request(_histogram([_hpoint(T0 + 20 * 10**9, [10, 40, 0, 0])])), NOW)
    got = {n: v for n, _, _, v in _points(decoder, out)}
    # the interval holds 40 observations, all in (10, 20]: p50 = 10 + 10 × 20/40
    assert got == pytest.approx({"http_server_duration_count_rate": 2.0, "http_server_duration_p50": 15.0,
                                 "http_server_duration_p95": 19.5, "http_server_duration_p99": 19.9})
    decoder.commit(out)
    quiet = decoder.decode(_request(_histogram([_hpoint(T0 + 40 * 10**9, [10, 40, 0, 0])])), NOW)
    assert [(n, v) for n, _, _, v in _points(decoder, quiet)] == [("http_server_duration_count_rate", 0.0)]


def test_bucket_quantile_matches_prometheus_edge_rules():
    lower, upper = np.array([-math.inf, 1.0, 2.0]), np.array([1.0, 2.0, math.inf])
    assert bucket_quantile(0.5, lower, upper, np.array([0.0, 0.0, 5.0])) == 2.0  # +Inf bucket: its lower bound
    assert bucket_quantile(0.5, lower, upper, np.array([4.0, 0.0, 0.0])) == 0.5  # first bucket starts at 0
    assert math.isnan(bucket_quantile(0.5, lower, upper, np.zeros(3)))
    neg_lower, neg_upper = np.array([-math.inf, -1.0]), np.array([-1.0, math.inf])
    assert bucket_quantile(0.1, neg_lower, neg_upper, np.array([3.0, 1.0])) == -1.0


def test_exponential_histogram_quantiles_from_bucket_boundaries(decoder):
    # scale 0: base 2; positive offset 2 → buckets (4, 8], (8, 16]; 10 + 10 observations
    point = {"startTimeUnixNano": str(T0 - 10 * 10**9), "timeUnixNano": str(T0), "count": "20", "scale": 0,
             "positive": {"offset": 2, "bucketCounts": ["10", "10"]}}
    metric = {"name": "lat", "exponentialHistogram": {"dataPoints": [point], "aggregationTemporality": 1}}
    got = {n: v for n, _, _, v in _points(decoder, decoder.decode(_request(metric), NOW))}
    assert got == pytest.approx({"lat_count_rate": 2.0, "lat_p50": 8.0, "lat_p95": 8 + 8 * 9 / 10, "lat_p99": 8 + 8 * 9.8 / 10})


def test_cumulative_exponential_histogram_compares_across_scales(decoder):
    def metric(t: int, scale: int, offset: int, counts: list[str]) -> bytes:
        point = {"startTimeUnixNano": str(START), "timeUnixNano": str(t), "count": str(sum(map(int, counts))),
                 "scale": scale, "positive": {"offset": offset, "bucketCounts": counts}}
        return _request({"name": "lat", "exponentialHistogram": {"dataPoints": [point], "aggregationTemporality": 2}})

    decoder.commit(decoder.decode(metric(T0, 1, 4, ["5", "5"]), NOW))  # scale 1: (4, 5.66], (5.66, 8]
    out = decoder.decode(metric(T0 + 10 * 10**9, 0, 2, ["10", "20"]), NOW)  # scale 0: (4, 8], (8, 16]
    got = {n: v for n, _, _, v in _points(decoder, out)}
    # differenced at scale 0: (4, 8] gained 0, (8, 16] gained 20
    assert got == pytest.approx({"lat_count_rate": 2.0, "lat_p50": 12.0, "lat_p95": 15.6, "lat_p99": 15.92})


def test_summary_quantiles_become_series_and_count_a_rate(decoder):
    def summary(t: int, count: str) -> bytes:
        return _request({"name": "rpc.latency", "summary": {"dataPoints": [{
            "startTimeUnixNano": str(START), "timeUnixNano": str(t), "count": count, "sum": 12.5,
            "quantileValues": [{"value": 0.5}, {"quantile": 0.5, "value": 3.5}, {"quantile": 0.999, "value": 9.25}]}]}})

    first = decoder.decode(summary(T0, "100"), NOW)
    assert [(n, v) for n, _, _, v in _points(decoder, first)] == [
        ("rpc_latency_p0", 0.5), ("rpc_latency_p50", 3.5), ("rpc_latency_p99_9", 9.25)]
    decoder.commit(first)
    second = decoder.decode(summary(T0 + 10 * 10**9, "150"), NOW)
    assert _points(decoder, second)[0][0::3] == ("rpc_latency_count_rate", 5.0)


def test_bad_points_are_rejected_one_by_one_and_the_rest_kept(decoder):
    good = {"timeUnixNano": str(T0), "asDouble": 1.0}
    body = _request(
        {"name": "g", "gauge": {"dataPoints": [
            good,
            {"asDouble": 1.0},  # no time
            {"timeUnixNano": str(T0)},  # no value
            {"timeUnixNano": str(T0), "asDouble": "NaN"},
            {"timeUnixNano": str(T0), "asInt": "twelve"},
            {"timeUnixNano": "later", "asDouble": 1.0},
            {"timeUnixNano": str(int(NOW + 3600) * 10**9), "asDouble": 1.0},
            {"timeUnixNano": str(T0), "asDouble": 2.0, "flags": 1},  # NO_RECORDED_VALUE: skipped, not rejected
        ]}},
        {"name": "s", "sum": {"dataPoints": [good, good]}},  # no aggregationTemporality
        {"name": "x"},  # no data at all
        {"gauge": {"dataPoints": [good]}},  # no name
    )
    out = decoder.decode(body, NOW)
    assert len(out.batch) == 1 and out.total == 12
    assert [(r.index, r.field) for r in out.rejected] == [
        (1, "timeUnixNano"), (2, "value"), (3, "value"), (4, "asInt"), (5, "timeUnixNano"), (6, "timeUnixNano"),
        (8, "aggregationTemporality"), (9, "aggregationTemporality"), (10, "metric"), (11, "name")]
    message = out.error_message()
    assert message.startswith("10 of 12 data points rejected: data point 1: timeUnixNano: metric 'g': required")
    assert message.endswith("and 5 more")


def test_empty_and_default_omitting_requests_are_fine(decoder):
    assert decoder.decode(b"{}", NOW).total == 0
    assert decoder.decode(b'{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"g","gauge":{}}]}]}]}', NOW).total == 0


@pytest.mark.parametrize("body", [b"{not json", b"[]", b'{"resourceMetrics": {}}', b'{"resourceMetrics": [1]}',
                                  b'{"resourceMetrics": [{"scopeMetrics": [{"metrics": "m"}]}]}'])
def test_bodies_that_are_not_a_request_raise_400(decoder, body):
    with pytest.raises(OtlpBodyError) as caught:
        decoder.decode(body, NOW)
    assert caught.value.status == 400


def test_decompress_gzip_limits_and_unknown_encodings():
    raw = b'{"resourceMetrics": []}'
    assert decompress(gzip.compress(raw), "gzip", 1000) == raw
    assert decompress(raw, None, 1000) == raw
    with pytest.raises(OtlpBodyError) as too_big:
        decompress(gzip.compress(b" " * 5000), "gzip", 1000)  # a small body inflating past the limit
    assert too_big.value.status == 413
    with pytest.raises(OtlpBodyError) as unknown:
        decompress(raw, "zstd", 1000)
    assert unknown.value.status == 415
    with pytest.raises(OtlpBodyError) as broken:
        decompress(b"not gzip", "gzip", 1000)
    assert broken.value.status == 400


def test_quantile_names():
    assert [quantile_name(q) for q in (0.5, 0.95, 0.99, 0.999, 0.0, 1.0)] == ["p50", "p95", "p99", "p99_9", "p0", "p100"]


def test_state_is_bounded(decoder):
    small = OtlpMetricsDecoder(SeriesRegistry(), max_state=3)
    for k in range(10):
        small.commit(small.decode(_request(_sum(f"c{k}", [{"timeUnixNano": str(T0), "asInt": "1"}])), NOW))
    assert len(small._state) == 3


def test_a_data_point_that_is_not_an_object_is_a_400_naming_where(decoder):
    body = _request({"name": "g", "gauge": {"dataPoints": [{"timeUnixNano": str(T0), "asDouble": 1}, 7]}})
    with pytest.raises(OtlpBodyError) as caught:
        decoder.decode(body, NOW)
    assert caught.value.status == 400 and "dataPoints[1]" in caught.value.message


def test_bad_resource_attributes_reject_the_points_of_that_resource_only(decoder):
    good = {"resource": RESOURCE, "scopeMetrics": [{"metrics": [
        {"name": "g", "gauge": {"dataPoints": [{"timeUnixNano": str(T0), "asDouble": 1}]}}]}]}
    bad = {"resource": {"attributes": [{"key": "", "value": {"stringValue": "x"}}]}, "scopeMetrics": [{"metrics": [
        {"name": "g", "gauge": {"dataPoints": [{"timeUnixNano": str(T0), "asDouble": 1}] * 2}}]}]}
    out = decoder.decode(msgspec.json.encode({"resourceMetrics": [bad, good]}), NOW)
    assert len(out.batch) == 1 and [(r.index, r.field) for r in out.rejected] == [(0, "resource.attributes"), (1, "resource.attributes")]


def test_series_limit_and_label_limit_reject_points(decoder):
    small = OtlpMetricsDecoder(SeriesRegistry(max_series=1))
    many = [{"key": f"k{i}", "value": {"stringValue": "v"}} for i in range(70)]
    body = _request({"name": "g", "gauge": {"dataPoints": [
        {"timeUnixNano": str(T0), "asDouble": 1, "attributes": _attrs(a="1")},
        {"timeUnixNano": str(T0), "asDouble": 1, "attributes": _attrs(a="2")},
        {"timeUnixNano": str(T0), "asDouble": 1, "attributes": many},
    ]}})
    out = small.decode(body, NOW)
    assert len(out.batch) == 1
    assert [(r.index, r.field) for r in out.rejected] == [(1, "name"), (2, "attributes")]
    assert "series limit" in out.rejected[0].reason and "at most 64 labels" in out.rejected[1].reason


def test_a_later_commit_of_older_state_does_not_move_a_counter_back(decoder):
    def counter(t: int, value: float) -> bytes:
        return _request(_sum("c", [{"startTimeUnixNano": str(START), "timeUnixNano": str(t), "asDouble": value}]))

    decoder.commit(decoder.decode(counter(T0, 10), NOW))
    early, late = decoder.decode(counter(T0 + 10**9, 11), NOW), decoder.decode(counter(T0 + 2 * 10**9, 13), NOW)
    decoder.commit(late)
    decoder.commit(early)  # requests answered out of order
    assert decoder.decode(counter(T0 + 3 * 10**9, 16), NOW).batch.value.tolist() == [3.0]


def test_the_same_series_from_two_resources_stays_apart(decoder):
    def resource(service: str) -> dict:
        return {"resource": {"attributes": _attrs(service__name=service)}, "scopeMetrics": [{"metrics": [
            {"name": "g", "gauge": {"dataPoints": [{"timeUnixNano": str(T0), "asDouble": 1.0}]}}]}]}

    out = decoder.decode(msgspec.json.encode({"resourceMetrics": [resource("a"), resource("b"), resource("a")]}), NOW)
    assert out.batch.series_id.tolist() == [0, 1, 0]
    assert decoder.registry.labels(1) == {"service": "b", "service_name": "b"}


def test_every_exception_is_exported():
    import ingest

    assert {"OtlpBodyError", "OtlpMetricsDecoder", "DecodedMetrics"} <= set(ingest.__all__)


def test_protobuf_decodes_to_the_same_points_as_json(decoder):
    from google.protobuf.json_format import ParseDict
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    body = _request(
        {"name": "g", "gauge": {"dataPoints": [{"attributes": _attrs(a="x"), "timeUnixNano": str(T0), "asInt": "5"}]}},
        _histogram([_hpoint(T0, [50, 30, 20, 0], start=T0 - 10 * 10**9)], temporality=1),
    )
    binary = ParseDict(msgspec.json.decode(body), ExportMetricsServiceRequest()).SerializeToString()
    other = OtlpMetricsDecoder(SeriesRegistry())
    assert _points(other, other.decode_protobuf(binary, NOW)) == _points(decoder, decoder.decode(body, NOW))
    with pytest.raises(OtlpBodyError) as caught:
        decoder.decode_protobuf(b"\xff\xff", NOW)
    assert caught.value.status == 400
