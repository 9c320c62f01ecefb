"""ExportLogsServiceRequest → LogRecords: the JSON rules, the field mapping, and per-record rejections."""

from __future__ import annotations

import msgspec
import pytest

from detectors.types import LogRecord
from ingest.otlp import OtlpBodyError
from ingest.otlp_logs import OtlpLogsDecoder

NOW = 1_800_000_000.0
RESOURCE = {"attributes": [
    {"key": "service.name", "value": {"stringValue": "checkout"}},
    {"key": "host.name", "value": {"stringValue": "node-3"}},
    {"key": "k8s.cluster.name", "value": {"stringValue": "eu-1"}},
    {"key": "process.pid", "value": {"intValue": "4242"}},
]}


def _decode(records: list, resource: dict = RESOURCE) -> tuple[list[LogRecord], list]:
    body = {"resourceLogs": [{"resource": resource, "scopeLogs": [{"scope": {"name": "s"}, "logRecords": records}]}]}
    decoded = OtlpLogsDecoder().decode(msgspec.json.encode(body), NOW)
    return decoded.records, decoded.rejected


def test_fields_map_to_a_record_with_source_labels():
    [r], rejected = _decode([{"timeUnixNano": "1800000000500000000", "observedTimeUnixNano": "1800000001000000000",
                              "severityNumber": 17, "severityText": "ERROR",
                              "body": {"stringValue": "payment timeout after 3000 ms"},
                              "traceId": "5B8EFFF798038103D269B633813FC60C", "spanId": "eee19b7ec3c1b174"}])
    assert rejected == []
    assert r == LogRecord(1_800_000_000.5, "payment timeout after 3000 ms", {
        "service_name": "checkout", "host_name": "node-3", "k8s_cluster_name": "eu-1", "process_pid": "4242",
        "service": "checkout", "host": "node-3", "cluster": "eu-1"}, 17)


def test_observed_time_stands_in_and_severity_text_is_read_when_the_number_is_absent():
    records, _ = _decode([
        {"observedTimeUnixNano": 1_800_000_002_000_000_000, "severityText": "warning", "body": {"stringValue": "a"}},
        {"timeUnixNano": "0", "observedTimeUnixNano": "1800000003000000000", "severityText": "Fatal"},
        {"timeUnixNano": "1800000004000000000", "severityNumber": 9, "severityText": "ERROR"},  # the number wins
    ])
    assert [(r.ts, r.severity, r.body) for r in records] == [(1_800_000_002.0, 13, "a"), (1_800_000_003.0, 21, ""),
                                                             (1_800_000_004.0, 9, "")]


@pytest.mark.parametrize(("body", "text"), [
    ({"intValue": "42"}, "42"),
    ({"boolValue": True}, "true"),
    ({"kvlistValue": {"values": [{"key": "msg", "value": {"stringValue": "hi"}}]}}, '{"msg":"hi"}'),
    ({"arrayValue": {"values": [{"stringValue": "a"}, {"intValue": "1"}]}}, '["a",1]'),
])
def test_structured_bodies_become_text(body, text):
    [r], _ = _decode([{"timeUnixNano": "1800000000000000000", "body": body}])
    assert r.body == text


def test_bad_records_are_rejected_one_by_one():
    ok = {"timeUnixNano": "1800000000000000000", "body": {"stringValue": "fine"}}
    records, rejected = _decode([
        ok,
        {"body": {"stringValue": "no time"}},
        {**ok, "timeUnixNano": "soon"},
        {**ok, "timeUnixNano": str(int((NOW + 3600) * 1e9))},
        {**ok, "severityNumber": 25},
        {**ok, "traceId": "abc"},
        {**ok, "spanId": "eee19b7ec3c1b17z"},
        {**ok, "body": ["not", "an", "AnyValue"]},
        {**ok, "attributes": {"not": "a list"}},
        ok,
    ])
    assert len(records) == 2
    assert [(r.index, r.field) for r in rejected] == [
        (1, "timeUnixNano"), (2, "timeUnixNano"), (3, "timeUnixNano"), (4, "severityNumber"), (5, "traceId"),
        (6, "spanId"), (7, "body"), (8, "attributes")]


def test_a_malformed_resource_rejects_its_records_only():
    body = {"resourceLogs": [
        {"resource": {"attributes": {"key": "oops"}}, "scopeLogs": [{"logRecords": [{"timeUnixNano": "1"}] * 2}]},
        {"resource": RESOURCE, "scopeLogs": [{"logRecords": [{"timeUnixNano": "1800000000000000000"}]}]},
    ]}
    decoded = OtlpLogsDecoder().decode(msgspec.json.encode(body), NOW)
    assert len(decoded.records) == 1 and [r.field for r in decoded.rejected] == ["resource.attributes"] * 2
    assert decoded.error_message().startswith("2 of 3 log records rejected: log record 0: resource.attributes")


@pytest.mark.parametrize("body", [b"", b"[1, 2]", b'{"resourceLogs": 3}', b'{"resourceLogs": [{"scopeLogs": [{"logRecords": 1}]}]}'])
def test_a_body_not_shaped_like_the_request_is_a_400(body):
    with pytest.raises(OtlpBodyError) as info:
        OtlpLogsDecoder().decode(body, NOW)
    assert info.value.status == 400


def test_protobuf_ids_in_base64_are_accepted():
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    request = ExportLogsServiceRequest()
    record = request.resource_logs.add().scope_logs.add().log_records.add()
    record.time_unix_nano, record.severity_number = 1_800_000_000_000_000_000, 17
    record.body.string_value = "disk full"
    record.trace_id, record.span_id = bytes(range(16)), bytes(range(8))
    bad = request.resource_logs[0].scope_logs[0].log_records.add()
    bad.time_unix_nano, bad.trace_id = 1_800_000_000_000_000_000, b"\x01"
    decoded = OtlpLogsDecoder().decode_protobuf(request.SerializeToString(), NOW)
    assert [(r.body, r.severity) for r in decoded.records] == [("disk full", 17)]
    assert [r.field for r in decoded.rejected] == ["traceId"]
