"""The Kafka record format of log lines (ingest/kafka_logs.py): round trip, keys, and what is refused."""

from __future__ import annotations

import msgspec
import pytest

from aiops.logmonitor import LogMonitor
from detectors.types import LogRecord
from ingest.kafka_codec import RecordError
from ingest.kafka_logs import LOG_VERSION, decode_logs, encode_logs, source_key

T0 = 1.7e9


def _lines() -> list[LogRecord]:
    a = {"service": "checkout", "host": "c-1", "k8s.pod.name": "checkout-7d9f"}
    b = {"service": "cart", "host": "k-1"}
    return [LogRecord(T0, "GET /items/1 200", a, 9), LogRecord(T0 + 1, "disk full", b, 17),
            LogRecord(T0 + 2, "GET /items/2 200", a, 9)]


def test_lines_round_trip_grouped_by_source_and_keyed_by_its_labels():
    encoded = encode_logs(_lines())
    assert [key for key, _ in encoded] == [b'{"service":"checkout","host":"c-1"}', b'{"service":"cart","host":"k-1"}']
    decoded = [decode_logs(value) for _, value in encoded]
    assert decoded == [[_lines()[0], _lines()[2]], [_lines()[1]]]  # all labels travel; order kept per source
    first = msgspec.json.decode(encoded[0][1])
    assert first == {"v": 1, "sources": [_lines()[0].labels], "source": [0, 0], "ts": [T0, T0 + 2],
                     "severity": [9, 9], "body": ["GET /items/1 200", "GET /items/2 200"]}


def test_the_key_is_the_source_only_whatever_else_the_labels_hold():
    assert source_key({"pod": "x", "env": "prod", "service": "a"}) == source_key({"service": "a", "env": "prod"})
    assert source_key({}) == b"{}"


def test_many_lines_of_one_source_are_cut_into_records_of_at_most_max_lines():
    lines = [LogRecord(T0 + i, f"line {i}", {"service": "a"}) for i in range(10)]
    encoded = encode_logs(lines, max_lines=4)
    assert [len(decode_logs(v)) for _, v in encoded] == [4, 4, 2]
    assert [r for _, v in encoded for r in decode_logs(v)] == lines


def _record(**change) -> bytes:
    rec = {"v": LOG_VERSION, "sources": [{"service": "a"}], "source": [0], "ts": [T0], "severity": [9], "body": ["x"]}
    return msgspec.json.encode({**rec, **change})


@pytest.mark.parametrize("value, reason", [
    (None, "empty"),
    (b"not json", "not a log record"),
    (b'{"v": 1}', "not a log record"),
    (_record(extra=1), "not a log record"),
    (_record(v=2), "version 2"),
    (_record(ts=[T0, T0]), "differ in length"),
    (_record(source=[1]), "out of range"),
    (_record(ts=[-1.0]), "ts must be"),
    (_record(severity=[99]), "severity"),
    (_record(sources=[{"service": 1}]), "not a log record"),
])
def test_malformed_records_raise_record_error_naming_the_reason(value, reason):
    with pytest.raises(RecordError, match=reason):
        decode_logs(value)


def test_a_monitor_state_with_open_intervals_continues_where_it_was():
    lines = [LogRecord(T0 + i, f"user {i} logged in", {"service": "a"}, 17 if i % 5 == 0 else 9) for i in range(90)]
    whole = LogMonitor(interval_s=60, warmup_records=0, grace_s=0)
    expected = whole.observe(lines).points + whole.flush()
    first = LogMonitor(interval_s=60, warmup_records=0, grace_s=0)
    got = first.observe(lines[:70]).points
    state = msgspec.json.decode(msgspec.json.encode(first.state_dict(open_intervals=True)))  # JSON as checkpointed
    second = LogMonitor(interval_s=60, warmup_records=0, grace_s=0)
    second.load_state_dict(state)
    got += second.observe(lines[70:]).points + second.flush()
    assert sorted(got, key=msgspec.json.encode) == sorted(expected, key=msgspec.json.encode)
    assert second.examples(0) == whole.examples(0)


def test_the_codec_is_exported_lazily_from_ingest():
    import ingest

    for name in ("LogProducer", "decode_logs", "encode_logs", "source_key"):
        assert name in ingest.__all__ and getattr(ingest, name) is not None


def test_the_key_uses_the_labels_the_log_monitor_counts_a_source_by():
    from aiops import logmonitor
    from ingest import kafka_logs

    assert kafka_logs.SOURCE_LABELS == logmonitor._SOURCE_LABELS
