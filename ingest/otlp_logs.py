"""Decode an OTLP/HTTP `ExportLogsServiceRequest` (JSON; protobuf via `decode_protobuf`) into `LogRecord`s.

Spec: OTLP 1.x, "OTLP/HTTP" and "JSON Protobuf Encoding" (opentelemetry.io/docs/specs/otlp), data model in
`opentelemetry/proto/logs/v1/logs.proto` and the Logs Data Model (opentelemetry.io/docs/specs/otel/logs/data-model).
The JSON rules used here: lowerCamelCase names; `timeUnixNano` / `observedTimeUnixNano` (fixed64) as
decimal strings (numbers accepted too); `severityNumber` an integer enum (1-24); `traceId` / `spanId`
hex strings of 32 / 16 characters (protobuf's own JSON mapping writes bytes in base64: the protobuf
path accepts that form too); fields at their default may be absent.

Mapping (docs/logs-traces.md "OTLP/HTTP ingest: logs"):

- text: `body` as it is when a `stringValue`; any other AnyValue as label text (ints and doubles in
  decimal, bools `true`/`false`, arrays and kvlists as compact JSON, bytes as base64 text).
- time: `timeUnixNano`, or `observedTimeUnixNano` when the former is 0 or absent (the data model's
  rule); a record with neither is rejected.
- severity: `severityNumber`; when it is 0/absent, read from `severityText` (TRACE 1, DEBUG 5, INFO 9,
  WARN 13, ERROR 17, FATAL 21, and the usual spellings), so sources without a severity parser still count
  their errors.
- labels: the resource attributes, names made Prometheus-safe as for metrics (`k8s.pod.name` →
  `k8s_pod_name`), plus `service` = `service.name`, `host` = `host.name`, `cluster` = `k8s.cluster.name`
  and `env` = `deployment.environment[.name]` (the last two unless the resource sets `cluster` / `env`
  itself): the source a template count is kept for. Record attributes
  and the scope are not labels: they vary per line.

Rejected per record (counted in `rejectedLogRecords`, reason in `errorMessage`): no time, a time that is
not an integer or more than `max_future_skew_s` in the future, a severity outside 0-24, a body that is
not an AnyValue, a `traceId`/`spanId` that is not 16/8 bytes of hex, malformed attributes, and every
record of a resource whose attributes are malformed. A body that is not JSON/protobuf or not shaped
like the request down to the records raises `OtlpBodyError` (400).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import Any

import msgspec

from detectors.types import LogRecord
from ingest.otlp import (
    NO_RESOURCE, ItemRejected, OtlpBodyError, OtlpResource, any_text, encode_export_response, parse_uint,
    rejection_message,
)
from ingest.points import Rejection

__all__ = ["DecodedLogs", "OtlpLogsDecoder", "encode_logs_response_protobuf"]

_MAX_BODY_CHARS = 64 * 1024  # a line longer than this is cut: templates come from the start of a message
_INVALID_LABEL_CHAR = re.compile(r"[^a-zA-Z0-9_]")
_SEVERITY_TEXT = {  # upper-cased severityText → SeverityNumber (the data model's ranges, first of each)
    "TRACE": 1, "DEBUG": 5, "INFO": 9, "INFORMATION": 9, "NOTICE": 10, "WARN": 13, "WARNING": 13,
    "ERROR": 17, "ERR": 17, "CRITICAL": 18, "CRIT": 18, "ALERT": 19, "EMERGENCY": 21, "EMERG": 21,
    "FATAL": 21, "PANIC": 21,
}
_SOURCE_ATTRIBUTES = (("service.name", "service"), ("host.name", "host"), ("k8s.cluster.name", "cluster"),
                      ("deployment.environment", "env"), ("deployment.environment.name", "env"))


@dataclass(slots=True)
class DecodedLogs:
    records: list[LogRecord]
    total: int  # log records in the request
    rejected: list[Rejection] = field(default_factory=list)  # index = ordinal of the record in the request

    def error_message(self) -> str:
        """The partial-success `errorMessage`: how many were rejected and the first few reasons."""
        return rejection_message(self.rejected, self.total, "log record")


class _Record(msgspec.Struct, rename="camel", gc=False):
    """One log record; fields stay untyped so that a bad value rejects this record only."""

    time_unix_nano: Any = None
    observed_time_unix_nano: Any = None
    severity_number: Any = None
    severity_text: Any = None
    body: Any = None
    attributes: Any = None
    trace_id: Any = None
    span_id: Any = None


class _ScopeLogs(msgspec.Struct, rename="camel", gc=False):
    log_records: list[_Record] | None = None


class _ResourceLogs(msgspec.Struct, rename="camel", gc=False):
    resource: OtlpResource | None = None
    scope_logs: list[_ScopeLogs] | None = None


class _Request(msgspec.Struct, rename="camel", gc=False):
    resource_logs: list[_ResourceLogs] | None = None


class OtlpLogsDecoder:
    """ExportLogsServiceRequest bodies → `LogRecord`s and per-record rejections (no state but caches)."""

    def __init__(self, max_future_skew_s: float = 300.0) -> None:
        self.max_future_skew_s = max_future_skew_s
        self._decoder = msgspec.json.Decoder(_Request)
        self._resources: dict[bytes, dict[str, str] | ItemRejected] = {}

    def decode(self, body: bytes, now: float, ids_base64: bool = False) -> DecodedLogs:
        try:
            request = self._decoder.decode(body)
        except msgspec.ValidationError as exc:
            raise OtlpBodyError(400, f"not an ExportLogsServiceRequest: {exc}") from exc
        except msgspec.DecodeError as exc:
            raise OtlpBodyError(400, f"malformed JSON: {exc}") from exc
        horizon = (now + self.max_future_skew_s) * 1e9
        records: list[LogRecord] = []
        rejected: list[Rejection] = []
        index = 0
        for rl in request.resource_logs or ():
            labels = self._resource_labels(bytes((rl.resource or NO_RESOURCE).attributes))
            for sl in rl.scope_logs or ():
                for raw in sl.log_records or ():  # a loop over records: each is text for the miner
                    try:
                        if isinstance(labels, ItemRejected):
                            raise labels
                        records.append(_record(raw, labels, horizon, ids_base64))
                    except ItemRejected as bad:
                        rejected.append(Rejection(index, bad.field, bad.reason))
                    index += 1
        return DecodedLogs(records, index, rejected)

    def decode_protobuf(self, body: bytes, now: float) -> DecodedLogs:
        """The same from the binary encoding: parsed by opentelemetry-proto, turned into the JSON form by
        protobuf's `MessageToDict` and decoded as JSON (as `ingest.otlp` does for metrics), ids in base64."""
        from google.protobuf.json_format import MessageToDict
        from google.protobuf.message import DecodeError
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

        message = ExportLogsServiceRequest()
        try:
            message.ParseFromString(body)
        except DecodeError as exc:
            raise OtlpBodyError(400, f"malformed protobuf ExportLogsServiceRequest: {exc}") from exc
        as_json = msgspec.json.encode(MessageToDict(message, use_integers_for_enums=True))
        return self.decode(as_json, now, ids_base64=True)

    def _resource_labels(self, raw: bytes) -> dict[str, str] | ItemRejected:
        found = self._resources.get(raw)
        if found is not None:
            return found
        try:
            labels = _resource_labels(msgspec.json.decode(raw))
        except (ItemRejected, msgspec.DecodeError) as exc:
            labels = ItemRejected("resource.attributes", getattr(exc, "reason", str(exc)))
        if len(self._resources) >= 10_000:  # bounded: resource spellings are the client's to choose
            self._resources.clear()
        self._resources[raw] = labels
        return labels


def _resource_labels(attributes: Any) -> dict[str, str]:
    if not attributes:
        return {}
    if not isinstance(attributes, list):
        raise ItemRejected("resource.attributes", "expected an array of {key, value}")
    raw: dict[str, str] = {}
    for kv in attributes:
        if not isinstance(kv, dict) or not isinstance(kv.get("key"), str) or not kv["key"]:
            raise ItemRejected("resource.attributes", "expected objects {key: non-empty string, value: AnyValue}")
        try:
            raw[kv["key"]] = any_text(kv.get("value"))
        except (TypeError, ValueError, AttributeError):
            raise ItemRejected("resource.attributes", f"{kv['key']!r}: not an AnyValue") from None
    labels = {_label_name(k): v for k, v in raw.items()}
    for attribute, label in _SOURCE_ATTRIBUTES:
        if attribute in raw and (label in ("service", "host") or label not in raw):
            labels[label] = raw[attribute]
    return labels


def _label_name(raw: str) -> str:
    name = _INVALID_LABEL_CHAR.sub("_", raw)
    if name[0].isdigit():
        return "key_" + name
    return "key" + name if name.startswith("_") and not name.startswith("__") else name


def _record(r: _Record, labels: dict[str, str], horizon: float, ids_base64: bool) -> LogRecord:
    t = parse_uint(r.time_unix_nano, "timeUnixNano") if r.time_unix_nano is not None else 0
    if not t:
        t = parse_uint(r.observed_time_unix_nano, "observedTimeUnixNano") if r.observed_time_unix_nano is not None else 0
    if not t:
        raise ItemRejected("timeUnixNano", "required (or observedTimeUnixNano)")
    if t > horizon:
        raise ItemRejected("timeUnixNano", f"more than the allowed skew in the future ({t / 1e9:.0f})")
    severity = _severity(r.severity_number, r.severity_text)
    _check_id(r.trace_id, "traceId", 16, ids_base64)
    _check_id(r.span_id, "spanId", 8, ids_base64)
    if r.attributes is not None and not isinstance(r.attributes, list):
        raise ItemRejected("attributes", "expected an array of {key, value}")
    return LogRecord(t / 1e9, _body_text(r.body), labels, severity)


def _severity(number: Any, text: Any) -> int:
    n = parse_uint(number, "severityNumber") if number is not None else 0
    if not 0 <= n <= 24:
        raise ItemRejected("severityNumber", f"must be within 0-24, got {n}")
    if n == 0 and isinstance(text, str) and text:
        n = _SEVERITY_TEXT.get(text.strip().upper(), 0)
    return n


def _body_text(body: Any) -> str:
    if body is None:
        return ""
    if not isinstance(body, dict):
        raise ItemRejected("body", "expected an AnyValue object such as {\"stringValue\": \"…\"}")
    text = body.get("stringValue")
    if not isinstance(text, str):
        try:
            text = any_text(body)
        except (TypeError, ValueError, AttributeError):
            raise ItemRejected("body", "not an AnyValue") from None
    return text[:_MAX_BODY_CHARS]


def _check_id(raw: Any, key: str, size: int, base64_ok: bool) -> None:
    """A trace or span id: `size` bytes as hex (OTLP JSON), or base64 (protobuf's JSON mapping); empty is none."""
    if raw is None or raw == "":
        return
    if not isinstance(raw, str):
        raise ItemRejected(key, f"expected a hex string of {2 * size} characters")
    if len(raw) == 2 * size:
        try:
            bytes.fromhex(raw)
            return
        except ValueError:
            pass
    if base64_ok:
        try:
            if len(base64.b64decode(raw, validate=True)) == size:
                return
        except (binascii.Error, ValueError):
            pass
    raise ItemRejected(key, f"expected a hex string of {2 * size} characters, got {raw[:40]!r}")


def encode_logs_response_protobuf(rejected: int, message: str) -> bytes:
    """An ExportLogsServiceResponse in the binary encoding (empty when nothing was rejected)."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
        ExportLogsPartialSuccess,
        ExportLogsServiceResponse,
    )

    return encode_export_response(ExportLogsServiceResponse, ExportLogsPartialSuccess, "rejected_log_records",
                                  rejected, message)
