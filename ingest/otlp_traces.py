"""Decode an OTLP/HTTP `ExportTraceServiceRequest` (JSON, or protobuf) into a `SpanBatch` and rejections.

Spec: OTLP 1.x "OTLP/HTTP" and "JSON Protobuf Encoding" (opentelemetry.io/docs/specs/otlp), data model
in `opentelemetry/proto/trace/v1/trace.proto`. What matters here: in JSON, `traceId`, `spanId` and
`parentSpanId` are hex strings (32 / 16 characters, any case), not base64 as proto3 JSON would have
it; 64-bit times are decimal strings (numbers accepted too); enums (`kind`, `status.code`) are
integers; fields at their default may be absent. In protobuf the ids are raw bytes (16 / 8).

Mapping (docs/logs-traces.md "OTLP/HTTP ingest: traces"):

- service: the resource attribute `service.name` (`unknown_service` when absent, the SDKs' default);
  operation: the span name; end: `endTimeUnixNano` / 1e9; duration: end − start, in ms.
- error: `status.code` 2 (ERROR). The HTTP semantic conventions make instrumentation set it for a 5xx
  answer, so attributes are not read.
- counted in RED (`SpanBatch.counted`): SERVER and CONSUMER spans, and root spans of any kind — the
  requests a service serves. CLIENT and INTERNAL spans with a parent only link services together.

A span is rejected on its own (counted in `rejectedSpans` with a reason) for a missing or malformed
trace or span id (wrong length, not hex, all zeros), a malformed parent id, no name, missing or
non-integer times, an end before its start, an end more than `max_future_skew_s` in the future, or
a kind / status code out of range. A body that is not JSON, or not shaped like the request down to
the spans (a span that is not an object included), raises `OtlpBodyError` (400) for all of it.

A request is decoded column by column: its spans' fields are gathered into lists and checked and
converted with numpy and string operations over the whole request (hex ids by one `bytes.fromhex`
of their concatenation, times by one int64 conversion). Only a request with some bad span goes
through the per-span checks, which name each bad span and its field.

Errors: `OtlpBodyError` refuses the request; everything about one span is a `Rejection`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np

from detectors.red import SpanBatch
from ingest.otlp import (
    NO_RESOURCE, ItemRejected, OtlpBodyError, OtlpResource, encode_export_response, rejection_message,
)
from ingest.points import Rejection

__all__ = ["DecodedSpans", "OtlpTracesDecoder", "encode_traces_response_protobuf"]

_SERVER, _CLIENT, _PRODUCER, _CONSUMER = 2, 3, 4, 5
_ERROR = 2
_UNKNOWN_SERVICE = "unknown_service"
_MAX_NAME = 1024
_HEX = frozenset("0123456789abcdefABCDEF")
_KINDS = frozenset({None, 0, 1, 2, 3, 4, 5})
_CODES = frozenset({None, 0, 1, 2})


@dataclass(slots=True)
class DecodedSpans:
    spans: SpanBatch
    total: int  # spans in the request
    rejected: list[Rejection] = field(default_factory=list)  # index = ordinal of the span in the request

    def error_message(self) -> str:
        """The partial-success `errorMessage`: how many were rejected and the first few reasons."""
        return rejection_message(self.rejected, self.total, "span")


class _Span(msgspec.Struct, rename="camel", gc=False):
    """One span; fields stay untyped so that a bad value rejects this span only."""

    trace_id: Any = None
    span_id: Any = None
    parent_span_id: Any = None
    name: Any = None
    kind: Any = None
    start_time_unix_nano: Any = None
    end_time_unix_nano: Any = None
    status: Any = None


class _ScopeSpans(msgspec.Struct, rename="camel", gc=False):
    spans: list[_Span] | None = None


class _ResourceSpans(msgspec.Struct, rename="camel", gc=False):
    resource: OtlpResource | None = None
    scope_spans: list[_ScopeSpans] | None = None


class _Request(msgspec.Struct, rename="camel", gc=False):
    resource_spans: list[_ResourceSpans] | None = None


class _Columns:
    """The accepted spans' columns and the request's rejections."""

    __slots__ = ("trace_id", "span_id", "parent_id", "service", "operation", "end_s", "duration_ms", "error", "counted",
                 "rejected", "index")

    def __init__(self) -> None:
        self.trace_id: list[str] = []
        self.span_id: list[str] = []
        self.parent_id: list[str] = []
        self.service: list[str] = []
        self.operation: list[str] = []
        self.end_s: list[float] = []
        self.duration_ms: list[float] = []
        self.error: list[bool] = []
        self.counted: list[bool] = []
        self.rejected: list[Rejection] = []
        self.index = 0

    def add(self, trace_id: str, span_id: str, parent: str, service: str, name: str, start: int, end: int, kind: int,
            error: bool) -> None:
        self.trace_id.append(trace_id)
        self.span_id.append(span_id)
        self.parent_id.append(parent)
        self.service.append(service)
        self.operation.append(name)
        self.end_s.append(end / 1e9)
        self.duration_ms.append((end - start) / 1e6)
        self.error.append(error)
        self.counted.append(kind in (_SERVER, _CONSUMER) or not parent)

    def decoded(self) -> DecodedSpans:
        spans = SpanBatch(
            np.array(self.span_id, dtype=object), np.array(self.parent_id, dtype=object),
            np.array(self.service, dtype=object), np.array(self.operation, dtype=object),
            np.array(self.end_s, dtype=np.float64), np.array(self.duration_ms, dtype=np.float64),
            np.array(self.error, dtype=bool), np.array(self.counted, dtype=bool), np.array(self.trace_id, dtype=object),
        )
        return DecodedSpans(spans, self.index, self.rejected)


class OtlpTracesDecoder:
    """Turns ExportTraceServiceRequest bodies into span columns; stateless but for small caches."""

    def __init__(self, max_future_skew_s: float = 300.0) -> None:
        self.max_future_skew_s = max_future_skew_s
        self._decoder = msgspec.json.Decoder(_Request)
        self._services: dict[bytes, str | ItemRejected] = {}

    def decode(self, body: bytes, now: float) -> DecodedSpans:
        try:
            request = self._decoder.decode(body)
        except msgspec.ValidationError as exc:
            raise OtlpBodyError(400, f"not an ExportTraceServiceRequest: {exc}") from exc
        except msgspec.DecodeError as exc:
            raise OtlpBodyError(400, f"malformed JSON: {exc}") from exc
        spans: list[_Span] = []
        services: list[str | ItemRejected] = []
        counts: list[int] = []
        for rs in request.resource_spans or ():
            service = self._service(bytes((rs.resource or NO_RESOURCE).attributes))
            for ss in rs.scope_spans or ():
                if ss.spans:
                    spans += ss.spans
                    services.append(service)
                    counts.append(len(ss.spans))
        horizon = int((now + self.max_future_skew_s) * 1e9)
        fast = _columns(spans, services, counts, horizon)
        return fast if fast is not None else self._one_by_one(spans, services, counts, horizon)

    def _one_by_one(self, spans: list[_Span], services: list, counts: list[int], horizon: int) -> DecodedSpans:
        """Each span checked on its own: the path of a request with bad spans, naming each."""
        out = _Columns()
        owner = iter([svc for svc, n in zip(services, counts) for _ in range(n)])
        for span in spans:
            service = next(owner)
            try:
                if isinstance(service, ItemRejected):
                    raise service
                self._json_span(span, service, horizon, out)
            except ItemRejected as bad:
                out.rejected.append(Rejection(out.index, bad.field, bad.reason))
            out.index += 1
        return out.decoded()

    def decode_protobuf(self, body: bytes, now: float) -> DecodedSpans:
        """The same from the binary encoding (`application/x-protobuf`, the Collector's default), read
        from the parsed message directly: ids are bytes there, which the JSON mapping would turn into base64."""
        from google.protobuf.message import DecodeError
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        request = ExportTraceServiceRequest()
        try:
            request.ParseFromString(body)
        except DecodeError as exc:
            raise OtlpBodyError(400, f"malformed protobuf ExportTraceServiceRequest: {exc}") from exc
        spans: list[Any] = []
        services: list[str] = []
        counts: list[int] = []
        for rs in request.resource_spans:
            service = _UNKNOWN_SERVICE
            for kv in rs.resource.attributes:
                if kv.key == "service.name":
                    service = kv.value.string_value or _UNKNOWN_SERVICE
            for ss in rs.scope_spans:
                if len(ss.spans):
                    spans += ss.spans
                    services.append(service)
                    counts.append(len(ss.spans))
        horizon = int((now + self.max_future_skew_s) * 1e9)
        fast = _proto_columns(spans, services, counts, horizon)
        if fast is not None:
            return fast
        out = _Columns()  # some span is bad: each checked on its own, to name it
        owner = iter([svc for svc, n in zip(services, counts) for _ in range(n)])
        for span in spans:
            service = next(owner)
            try:
                self._proto_span(span, service, horizon, out)
            except ItemRejected as bad:
                out.rejected.append(Rejection(out.index, bad.field, bad.reason))
            out.index += 1
        return out.decoded()

    # -- one span ----------------------------------------------------------------------------------

    def _json_span(self, span: _Span, service: str, horizon: int, out: _Columns) -> None:
        trace_id = _hex_id(span.trace_id, "traceId", 32)
        span_id = _hex_id(span.span_id, "spanId", 16)
        parent = span.parent_span_id
        parent = "" if parent in (None, "") else _hex_id(parent, "parentSpanId", 16)
        name = span.name
        if not isinstance(name, str) or not name or len(name) > _MAX_NAME:
            raise ItemRejected("name", f"must be a non-empty string of at most {_MAX_NAME} characters")
        start = parse_uint(span.start_time_unix_nano, "startTimeUnixNano")
        end = parse_uint(span.end_time_unix_nano, "endTimeUnixNano")
        kind = _enum(span.kind, "kind", 5)
        status = span.status
        if status is not None and not isinstance(status, dict):
            raise ItemRejected("status", "expected an object {code, message}")
        code = _enum((status or {}).get("code"), "status.code", 2)
        _times(start, end, horizon)
        out.add(trace_id, span_id, parent, service, name, start, end, kind, code == _ERROR)

    @staticmethod
    def _proto_span(span: Any, service: str, horizon: int, out: _Columns) -> None:
        if len(span.trace_id) != 16 or not any(span.trace_id):
            raise ItemRejected("traceId", f"must be 16 bytes, not all zero; got {len(span.trace_id)} bytes")
        if len(span.span_id) != 8 or not any(span.span_id):
            raise ItemRejected("spanId", f"must be 8 bytes, not all zero; got {len(span.span_id)} bytes")
        parent = span.parent_span_id
        if parent and len(parent) != 8:
            raise ItemRejected("parentSpanId", f"must be 8 bytes or empty, got {len(parent)} bytes")
        if not span.name or len(span.name) > _MAX_NAME:
            raise ItemRejected("name", f"must be a non-empty string of at most {_MAX_NAME} characters")
        start, end = span.start_time_unix_nano, span.end_time_unix_nano
        if not start:
            raise ItemRejected("startTimeUnixNano", "missing")
        if not end:
            raise ItemRejected("endTimeUnixNano", "missing")
        if not 0 <= span.kind <= 5:
            raise ItemRejected("kind", f"must be within 0..5, got {span.kind}")
        if not 0 <= span.status.code <= 2:
            raise ItemRejected("status.code", f"must be within 0..2, got {span.status.code}")
        _times(start, end, horizon)
        error = span.status.code == _ERROR
        out.add(span.trace_id.hex(), span.span_id.hex(), parent.hex() if any(parent) else "", service, span.name, start, end,
                span.kind, error)

    def _service(self, res_raw: bytes) -> str | ItemRejected:
        found = self._services.get(res_raw)
        if found is not None:
            return found
        try:
            service = _service_name(msgspec.json.decode(res_raw))
        except ItemRejected as bad:
            service = ItemRejected("resource.attributes", bad.reason)
        if len(self._services) >= 10_000:
            self._services.clear()
        self._services[res_raw] = service
        return service


def _service_name(attributes: Any) -> str:
    if not attributes:
        return _UNKNOWN_SERVICE
    if not isinstance(attributes, list):
        raise ItemRejected("attributes", "expected an array of {key, value}")
    for kv in attributes:
        if not isinstance(kv, dict) or not isinstance(kv.get("key"), str):
            raise ItemRejected("attributes", "expected objects {key: string, value: AnyValue}")
        if kv["key"] == "service.name":
            value = kv.get("value")
            text = value.get("stringValue") if isinstance(value, dict) else None
            if not isinstance(text, str):
                raise ItemRejected("attributes", "service.name: expected {stringValue: …}")
            return text or _UNKNOWN_SERVICE
    return _UNKNOWN_SERVICE


def _hex_id(raw: Any, key: str, length: int) -> str:
    """A JSON trace/span id: `length` hex characters, not all zeros; returned in lower case."""
    if not isinstance(raw, str) or len(raw) != length or not _HEX.issuperset(raw):
        shown = raw[:40] if isinstance(raw, str) else raw
        raise ItemRejected(key, f"expected {length} hex characters, got {shown!r}"[:120])
    if raw.count("0") == length:
        raise ItemRejected(key, "must not be all zeros")
    return raw.lower()


def parse_uint(raw: Any, key: str) -> int:
    if raw is None:
        raise ItemRejected(key, "missing")
    if isinstance(raw, str) and raw.isdigit():
        return int(raw)
    if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 0:
        return raw
    raise ItemRejected(key, f"expected a decimal integer string, got {raw!r}"[:120])


def _enum(raw: Any, key: str, top: int) -> int:
    if raw is None:
        return 0
    if isinstance(raw, int) and not isinstance(raw, bool) and 0 <= raw <= top:
        return raw
    raise ItemRejected(key, f"expected an integer within 0..{top}, got {raw!r}"[:120])


def _times(start: int, end: int, horizon: int) -> None:
    if end < start:
        raise ItemRejected("endTimeUnixNano", f"ends before it starts ({end} < {start})")
    if end > horizon:
        raise ItemRejected("endTimeUnixNano", "too far in the future (ingest.max_future_skew_s)")


def _columns(spans: list[_Span], services: list, counts: list[int], horizon: int) -> DecodedSpans | None:
    """The request's spans checked and converted a column at a time; None if any span is bad (then the
    per-span path names it). Lists are gathered by comprehensions, checks run over whole columns."""
    n = len(spans)
    if any(isinstance(s, ItemRejected) for s in services):
        return None
    trace_ids = [s.trace_id for s in spans]
    span_ids = [s.span_id for s in spans]
    parents = [s.parent_span_id or "" for s in spans]
    names = [s.name for s in spans]
    starts = [s.start_time_unix_nano for s in spans]
    ends = [s.end_time_unix_nano for s in spans]
    kinds = [s.kind for s in spans]
    statuses = [s.status for s in spans]
    if n and not (_ids_ok(trace_ids, 32) and _ids_ok(span_ids, 16)):
        return None
    linked = [p for p in parents if p]
    if linked and not _ids_ok(linked, 16):
        return None
    if n and not (set(map(type, names)) == {str} and min(map(len, names)) > 0 and max(map(len, names)) <= _MAX_NAME):
        return None
    if not (_KINDS.issuperset(kinds) and set(map(type, kinds)) <= {int, type(None)}):
        return None
    if not set(map(type, statuses)) <= {dict, type(None)}:
        return None
    codes = [st.get("code") if st else None for st in statuses]
    if not (_CODES.issuperset(codes) and set(map(type, codes)) <= {int, type(None)}):
        return None
    start, end = _nanos(starts), _nanos(ends)
    if start is None or end is None or (end < start).any() or (end > horizon).any() or (start <= 0).any():
        return None
    parent = np.array([p.lower() for p in parents], dtype=object)
    kind = np.array([k or 0 for k in kinds], dtype=np.int64)
    spans_out = SpanBatch(
        np.array([i.lower() for i in span_ids], dtype=object), parent,
        np.repeat(np.array(services, dtype=object), counts) if n else np.empty(0, dtype=object),
        np.array(names, dtype=object), end / 1e9, (end - start) / 1e6,
        np.array([c == _ERROR for c in codes], dtype=bool), np.isin(kind, (_SERVER, _CONSUMER)) | (parent == ""),
        np.array([i.lower() for i in trace_ids], dtype=object),
    )
    return DecodedSpans(spans_out, n, [])


def _proto_columns(spans: list[Any], services: list[str], counts: list[int], horizon: int) -> DecodedSpans | None:
    """`_columns` for parsed protobuf spans (ids as bytes); None if any span is bad."""
    n = len(spans)
    if not n:
        return _Columns().decoded()
    trace_ids = [s.trace_id for s in spans]
    span_ids = [s.span_id for s in spans]
    parents = [s.parent_span_id for s in spans]
    names = [s.name for s in spans]
    kinds = np.array([s.kind for s in spans], dtype=np.int64)
    codes = np.array([s.status.code for s in spans], dtype=np.int64)
    start = np.array([s.start_time_unix_nano for s in spans], dtype=np.uint64)
    end = np.array([s.end_time_unix_nano for s in spans], dtype=np.uint64)
    linked = [p for p in parents if p]
    if set(map(len, trace_ids)) != {16} or b"\0" * 16 in trace_ids or set(map(len, span_ids)) != {8} or b"\0" * 8 in span_ids:
        return None
    if linked and set(map(len, linked)) != {8}:
        return None
    if min(map(len, names)) == 0 or max(map(len, names)) > _MAX_NAME:
        return None
    if kinds.min() < 0 or kinds.max() > 5 or codes.min() < 0 or codes.max() > 2:
        return None
    if (start == 0).any() or (end < start).any() or (end > horizon).any():
        return None
    start, end = start.astype(np.int64), end.astype(np.int64)
    joined = b"".join(span_ids).hex()
    traces = b"".join(trace_ids).hex()
    parent = np.array([p.hex() if any(p) else "" for p in parents], dtype=object)
    spans_out = SpanBatch(
        np.array([joined[i:i + 16] for i in range(0, 16 * n, 16)], dtype=object), parent,
        np.repeat(np.array(services, dtype=object), counts), np.array(names, dtype=object), end / 1e9,
        (end - start) / 1e6, codes == _ERROR, np.isin(kinds, (_SERVER, _CONSUMER)) | (parent == ""),
        np.array([traces[i:i + 32] for i in range(0, 32 * n, 32)], dtype=object),
    )
    return DecodedSpans(spans_out, n, [])


def _ids_ok(ids: list, length: int) -> bool:
    """Every id a string of `length` hex characters, none all zeros (C-speed checks over the whole list)."""
    if set(map(type, ids)) != {str} or set(map(len, ids)) != {length}:
        return False
    joined = "".join(ids)
    if "0" * length in ids:
        return False
    try:
        return 2 * len(bytes.fromhex(joined)) == len(joined)  # fromhex skips whitespace: then it is shorter
    except ValueError:
        return False


def _nanos(values: list) -> np.ndarray | None:
    """int64 nanoseconds from decimal strings (or JSON integers); None if any is neither."""
    kinds = set(map(type, values))
    if kinds == {str}:
        if not "".join(values).isdigit():
            return None
    elif kinds != {int} and values:
        return None
    try:
        return np.array(values, dtype=np.int64)
    except (ValueError, OverflowError):  # past int64: the year 2262
        return None


def encode_traces_response_protobuf(rejected: int, message: str) -> bytes:
    """An ExportTraceServiceResponse in the binary encoding (empty when nothing was rejected)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTracePartialSuccess,
        ExportTraceServiceResponse,
    )

    return encode_export_response(ExportTraceServiceResponse, ExportTracePartialSuccess, "rejected_spans",
                                  rejected, message)
