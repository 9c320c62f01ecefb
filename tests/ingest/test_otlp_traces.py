"""The OTLP trace decoder: JSON and protobuf to span columns, one rejection per bad span."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest

from ingest.otlp import OtlpBodyError
from ingest.otlp_traces import OtlpTracesDecoder, _columns, encode_traces_response_protobuf

NOW = 1_800_000_000.0


def _span(**over) -> dict:
    span = {"traceId": "5B8EFFF798038103D269B633813FC60C", "spanId": "EEE19B7EC3C1B174", "name": "GET /pay", "kind": 2,
            "startTimeUnixNano": "1799999999000000000", "endTimeUnixNano": "1799999999250000000"}
    span.update(over)
    return {k: v for k, v in span.items() if v is not None}


def _body(*spans: dict, service: str | None = "payments") -> bytes:
    attrs = [{"key": "service.name", "value": {"stringValue": service}}] if service is not None else []
    return msgspec.json.encode({"resourceSpans": [{"resource": {"attributes": attrs},
                                                   "scopeSpans": [{"spans": list(spans)}]}]})


def test_a_server_span_in_the_collectors_json_encoding():
    decoded = OtlpTracesDecoder().decode(_body(_span(parentSpanId="", attributes=[
        {"key": "http.response.status_code", "value": {"intValue": "200"}}])), NOW)
    s = decoded.spans
    assert decoded.total == 1 and not decoded.rejected and decoded.error_message() == ""
    assert (s.span_id[0], s.parent_id[0], s.service[0], s.operation[0]) == ("eee19b7ec3c1b174", "", "payments", "GET /pay")
    assert s.end_s[0] == pytest.approx(1_799_999_999.25) and s.duration_ms[0] == pytest.approx(250.0)
    assert not s.error[0] and s.counted[0]


def test_errors_from_status_and_which_spans_count_as_requests():
    spans = [
        _span(spanId="0000000000000001", status={"code": 2, "message": "timeout"}),
        _span(spanId="0000000000000002", attributes=[{"key": "http.status_code", "value": {"intValue": 503}}]),
        _span(spanId="0000000000000003", kind=3, parentSpanId="0000000000000001"),  # CLIENT with a parent
        _span(spanId="0000000000000004", kind=5, parentSpanId="0000000000000003"),  # CONSUMER
        _span(spanId="0000000000000005", kind=1),  # INTERNAL root
        _span(spanId="0000000000000006", startTimeUnixNano=1799999999000000000, endTimeUnixNano=1799999999500000000),
    ]
    s = OtlpTracesDecoder().decode(_body(*spans, service=None), NOW).spans
    assert s.error.tolist() == [True, False, False, False, False, False]  # the status says it, not the attributes
    assert s.counted.tolist() == [True, True, False, True, True, True]
    assert set(s.service) == {"unknown_service"}  # the SDKs' default when service.name is missing
    assert s.duration_ms[5] == pytest.approx(500.0)  # int64 as JSON numbers is accepted too


@pytest.mark.parametrize(("over", "field"), [
    ({"traceId": "abc"}, "traceId"),
    ({"traceId": "0" * 32}, "traceId"),
    ({"traceId": "z" * 32}, "traceId"),
    ({"spanId": None}, "spanId"),
    ({"parentSpanId": "123"}, "parentSpanId"),
    ({"name": ""}, "name"),
    ({"startTimeUnixNano": None}, "startTimeUnixNano"),
    ({"endTimeUnixNano": "soon"}, "endTimeUnixNano"),
    ({"endTimeUnixNano": "1799999998000000000"}, "endTimeUnixNano"),
    ({"endTimeUnixNano": str(int((NOW + 3600) * 1e9))}, "endTimeUnixNano"),
    ({"kind": 7}, "kind"),
    ({"status": {"code": "ERROR"}}, "status.code"),
    ({"status": 2}, "status"),
])
def test_each_bad_field_rejects_its_span_only(over, field):
    decoded = OtlpTracesDecoder().decode(_body(_span(spanId="00000000000000aa"), _span(**over)), NOW)
    assert len(decoded.spans) == 1 and decoded.total == 2
    assert [(r.index, r.field) for r in decoded.rejected] == [(1, field)]
    assert decoded.error_message().startswith(f"1 of 2 spans rejected: span 1: {field}: ")


def test_a_bad_resource_rejects_its_spans_and_bad_shapes_refuse_the_request():
    body = msgspec.json.encode({"resourceSpans": [{"resource": {"attributes": {"service.name": "x"}},
                                                   "scopeSpans": [{"spans": [_span(), _span()]}]}]})
    decoded = OtlpTracesDecoder().decode(body, NOW)
    assert len(decoded.spans) == 0 and [r.field for r in decoded.rejected] == ["resource.attributes"] * 2
    for bad in (b"[", b'{"resourceSpans": {}}', b'{"resourceSpans": [{"scopeSpans": [{"spans": ["x"]}]}]}'):
        with pytest.raises(OtlpBodyError) as caught:
            OtlpTracesDecoder().decode(bad, NOW)
        assert caught.value.status == 400


def test_protobuf_has_byte_ids_and_decodes_like_json():
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
        ExportTraceServiceResponse,
    )
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

    def span(span_id: bytes, parent: bytes = b"", **kw) -> Span:
        return Span(trace_id=bytes.fromhex("5b8efff798038103d269b633813fc60c"), span_id=span_id, parent_span_id=parent,
                    name="GET /pay", kind=2, start_time_unix_nano=1799999999000000000,
                    end_time_unix_nano=1799999999250000000, **kw)

    request = ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=[
        span(bytes.fromhex("eee19b7ec3c1b174"), status=Status(code=2)),
        span(bytes.fromhex("00000000000000aa"), parent=bytes.fromhex("eee19b7ec3c1b174")),
        span(b"\x01\x02"),
    ])])])
    request.resource_spans[0].resource.attributes.add(key="service.name").value.string_value = "payments"
    decoded = OtlpTracesDecoder().decode_protobuf(request.SerializeToString(), NOW)
    s = decoded.spans
    assert s.span_id.tolist() == ["eee19b7ec3c1b174", "00000000000000aa"] and s.parent_id.tolist() == ["", "eee19b7ec3c1b174"]
    assert s.error.tolist() == [True, False] and list(s.service) == ["payments"] * 2
    assert s.trace_id.tolist() == ["5b8efff798038103d269b633813fc60c"] * 2
    assert [(r.index, r.field) for r in decoded.rejected] == [(2, "spanId")]
    with pytest.raises(OtlpBodyError):
        OtlpTracesDecoder().decode_protobuf(b"\x0a\xff\xff", NOW)
    answer = ExportTraceServiceResponse.FromString(encode_traces_response_protobuf(1, "1 of 3 spans rejected"))
    assert answer.partial_success.rejected_spans == 1
    assert encode_traces_response_protobuf(0, "") == b""
    assert np.isfinite(s.duration_ms).all()


def test_the_column_path_and_the_per_span_path_agree():
    rows = [_span(spanId=f"{k + 1:016x}", parentSpanId=f"{k:016x}" if k else None, kind=[2, 3, 5, 1][k % 4],
                  status={"code": k % 3}, name=f"op{k % 5}", endTimeUnixNano=str(1799999999250000000 + k))
            for k in range(40)]
    decoder = OtlpTracesDecoder()
    request = msgspec.json.decode(_body(*rows), type=decoder._decoder.type)
    spans = request.resource_spans[0].scope_spans[0].spans
    horizon = int((NOW + 300) * 1e9)
    fast = _columns(spans, ["payments"], [len(spans)], horizon)
    assert fast is not None  # every span good: the column path answered
    slow = decoder._one_by_one(spans, ["payments"], [len(spans)], horizon)
    for name in ("span_id", "parent_id", "service", "operation", "end_s", "duration_ms", "error", "counted", "trace_id"):
        np.testing.assert_array_equal(getattr(fast.spans, name), getattr(slow.spans, name), err_msg=name)


def test_the_protobuf_column_path_agrees_with_the_per_span_path():
    from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

    from ingest.otlp_traces import _Columns, _proto_columns

    spans = [Span(trace_id=bytes.fromhex(f"{k + 1:032x}"), span_id=bytes.fromhex(f"{k + 1:016x}"),
                  parent_span_id=bytes.fromhex(f"{k:016x}") if k else b"", name=f"op{k % 3}", kind=[2, 3, 5, 1][k % 4],
                  start_time_unix_nano=1799999999000000000, end_time_unix_nano=1799999999250000000 + k,
                  status=Status(code=k % 3)) for k in range(30)]
    horizon = int((NOW + 300) * 1e9)
    fast = _proto_columns(spans, ["a", "b"], [10, 20], horizon)
    assert fast is not None
    slow = _Columns()
    for k, span in enumerate(spans):
        OtlpTracesDecoder._proto_span(span, "a" if k < 10 else "b", horizon, slow)
    for name in ("span_id", "parent_id", "service", "operation", "end_s", "duration_ms", "error", "counted", "trace_id"):
        np.testing.assert_array_equal(getattr(fast.spans, name), getattr(slow.decoded().spans, name), err_msg=name)
    spans[3].span_id = b"\0" * 8
    assert _proto_columns(spans, ["a", "b"], [10, 20], horizon) is None  # a bad span: the per-span path names it
