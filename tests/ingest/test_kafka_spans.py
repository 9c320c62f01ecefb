"""The span record format on Kafka: round trips, partitioning, and records that go to the dead letters."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest

from detectors.red import SpanBatch
from ingest.kafka_codec import RecordError
from ingest.kafka_spans import decode_spans, encode_spans, service_partition, trace_partitions


def _spans(caller=None) -> SpanBatch:
    return SpanBatch(
        np.array(["a1", "b1", "c1"], dtype=object), np.array(["", "a1", "b1"], dtype=object),
        np.array(["checkout", "payments", "payments"], dtype=object), np.array(["GET /cart", "charge", "db"], dtype=object),
        np.array([1e9 + 1, 1e9 + 2, 1e9 + 3]), np.array([30.0, 20.5, 0.0]), np.array([False, True, False]),
        np.array([True, True, False]),
        np.array(["5b8efff798038103d269b633813fc60c"] * 2 + ["00000000000000000000000000000102"], dtype=object),
        caller,
    )


def test_raw_spans_round_trip_with_their_ids():
    spans = _spans()
    back, source, watermark = decode_spans(encode_spans(spans, raw=True))
    assert source is None and watermark is None
    for name in ("span_id", "parent_id", "service", "operation", "end_s", "duration_ms", "error", "counted", "trace_id"):
        np.testing.assert_array_equal(getattr(back, name), getattr(spans, name), err_msg=name)
    assert back.caller is None  # to be resolved by the owner of the trace's partition


def test_resolved_spans_round_trip_with_callers_and_without_ids():
    spans = _spans(caller=np.array(["", "checkout", ""], dtype=object))
    value = encode_spans(spans, raw=False, source=2, watermark=1e9 + 5)
    assert b"5b8efff7" not in value and b'"caller":[-1,' in value
    back, source, watermark = decode_spans(value)
    assert (source, watermark) == (2, 1e9 + 5)
    assert back.caller.tolist() == ["", "checkout", ""] and back.trace_id is None
    assert back.service.tolist() == ["checkout", "payments", "payments"] and back.error.tolist() == [False, True, False]


def test_traces_spread_over_partitions_by_the_ids_low_bits_and_services_by_murmur2():
    ids = np.array([f"{k:032x}" for k in range(1, 1201)], dtype=object)
    counts = np.bincount(trace_partitions(ids, 12), minlength=12)
    assert counts.tolist() == [100] * 12
    assert trace_partitions(np.array(["ff" * 16], dtype=object), 7)[0] == 0xFFFFFFFF % 7
    assert service_partition("checkout", 12) == service_partition("checkout", 12) < 12


@pytest.mark.parametrize("change, message", [
    (lambda r: r.update(v=2), "version 2"),
    (lambda r: r.update(dur=[1.0]), "differ in length"),
    (lambda r: r.update(service=[0, 9, 0]), "service: an index is outside"),
    (lambda r: r.update(caller=[-2, 0, 0]), "caller: an index is outside"),
    (lambda r: r.update(end=[1e9, -1.0, 1e9]), "finite positive"),
    (lambda r: r.update(dur=[1.0, -0.5, 1.0]), "finite duration"),
    (lambda r: r.pop("parent"), "trace, span and parent together"),
    (lambda r: r.update(extra=1), "not a span record"),
    (lambda r: r.update(src=-1), "src and wm"),
    (lambda r: r.update(wm=0.0), "src and wm"),
])
def test_bad_records_are_refused_with_the_reason(change, message):
    record = msgspec.json.decode(encode_spans(_spans(), raw=True))
    change(record)
    if "caller" in record:
        for key in ("trace", "span", "parent"):
            record.pop(key)
    with pytest.raises(RecordError, match=message):
        decode_spans(msgspec.json.encode(record))


@pytest.mark.parametrize("value", [b"", b"not json", b"[]"])
def test_undecodable_records_are_refused(value):
    with pytest.raises(RecordError):
        decode_spans(value)
