"""The OTLP/HTTP protocol shared by POST /v1/metrics, /v1/logs and /v1/traces: one protocol, one way to answer.

Spec: OTLP 1.x "OTLP/HTTP" (opentelemetry.io/docs/specs/otlp/#otlphttp: "OTLP/HTTP Request",
"OTLP/HTTP Response", "Full Success", "Partial Success", "Failures", "Throttling"). A request is an
`Export<Signal>ServiceRequest` as `application/json` or `application/x-protobuf`, optionally
`Content-Encoding: gzip`/`deflate`; the answer is in the encoding of the request:

- 200 `{}`, or `{"partialSuccess": {"rejected<Things>": "N", "errorMessage": "…"}}` (int64 as a decimal
  string) when some items were rejected — a success, not to be retried;
- 400 / 413 / 415 with a `google.rpc.Status` body `{"code": 3, "message": "…"}` (INVALID_ARGUMENT) — permanent;
  415 (another Content-Type, or an unknown Content-Encoding) is answered in JSON;
- 503 `{"code": 14, …}` (UNAVAILABLE) with `Retry-After` when the pipeline is saturated — retried.

What each signal does with its decoded request stays in its own router (`otlp`, `otlp_logs`, `otlp_traces`).

Errors: `Refused` (carrying the 415/404/413/400 answer) is raised by `read_export` and caught by the
signal's handler, which returns its answer; it never leaves a handler.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import msgspec
from fastapi import Request
from starlette.concurrency import run_in_threadpool

from aiops.api.routers._push import BodyTooLarge, read_limited
from aiops.service import Service
from ingest.otlp import OtlpBodyError, decompress, encode_status_protobuf

__all__ = [
    "INVALID_ARGUMENT", "JSON", "PROTOBUF", "STATUS_DOC", "UNAVAILABLE", "UNIMPLEMENTED", "Answer", "Decoder", "Refused",
    "Signal", "media_type", "negotiate", "read_export", "saturated", "status",
]

JSON, PROTOBUF = "application/json", "application/x-protobuf"
INVALID_ARGUMENT, UNIMPLEMENTED, UNAVAILABLE = 3, 12, 14  # google.rpc.Code
Answer = tuple[int, bytes, dict[str, str], str]  # status, body, extra headers, media type

encode_json = msgspec.json.Encoder().encode
T = TypeVar("T", covariant=True)

# The OpenAPI shape of a google.rpc.Status answer.
STATUS_DOC: dict[str, Any] = {
    "model": None, "content": {"application/json": {"example": {"code": 3, "message": "malformed JSON: …"}}},
}


class Refused(Exception):
    """The request is answered before its signal sees it (415, 404, 413, 400); `answer` is that answer."""

    def __init__(self, answer: Answer) -> None:
        super().__init__(answer[0])
        self.answer = answer


def status(http: int, code: int, message: str, media: str = JSON, headers: dict[str, str] | None = None) -> Answer:
    """A `google.rpc.Status` answer, in protobuf when the request was, else in JSON."""
    if media == PROTOBUF:
        return http, encode_status_protobuf(code, message), headers or {}, media
    return http, encode_json({"code": code, "message": message}), headers or {}, JSON


def media_type(content_type: str | None) -> str:
    """The media type of a Content-Type header, without parameters, lower-cased."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def negotiate(service: Service, request: Request) -> str:
    """The request's media type; `Refused` (415, in JSON) if it is neither OTLP encoding."""
    media = media_type(request.headers.get("content-type"))
    if media not in (JSON, PROTOBUF):
        service.telemetry.ingest_requests.labels(status="415").inc()
        raise Refused(status(415, INVALID_ARGUMENT, f"Content-Type {media or 'missing'!r} is not supported: "
                                                    f"send {JSON} or {PROTOBUF}"))
    return media


class Decoder(Protocol[T]):
    def decode(self, body: bytes, now: float) -> T: ...
    def decode_protobuf(self, body: bytes, now: float) -> T: ...


async def read_export(service: Service, request: Request, decoder: Decoder[T], *, disabled: str | None = None,
                      in_thread: bool = False) -> tuple[T, float, str]:
    """The decoded request, the time it was read at and its media type: negotiated, read under the size
    limit, decompressed, decoded.

    `Refused` with 415 for another Content-Type; 404 UNIMPLEMENTED when the signal is `disabled` (the
    reason); 413 past `server.max_body_bytes`; the decoder's 400/415. `in_thread` decodes off the event
    loop, for decoders slow enough to stall it.
    """
    media = negotiate(service, request)
    if disabled is not None:
        raise Refused(status(404, UNIMPLEMENTED, disabled, media))
    telemetry = service.telemetry
    limit = service.settings.server.max_body_bytes
    try:
        raw = await read_limited(request.stream(), request.headers.get("content-length"), limit)
        body = decompress(raw, request.headers.get("content-encoding"), limit)
        now = service.clock()
        decode = decoder.decode if media == JSON else decoder.decode_protobuf
        decoded = await run_in_threadpool(decode, body, now) if in_thread else decode(body, now)
    except BodyTooLarge:
        telemetry.ingest_requests.labels(status="413").inc()
        message = f"body larger than the limit of {limit} bytes (server.max_body_bytes)"
        raise Refused(status(413, INVALID_ARGUMENT, message, media)) from None
    except OtlpBodyError as exc:
        telemetry.ingest_requests.labels(status=str(exc.status)).inc()
        raise Refused(status(exc.status, INVALID_ARGUMENT, exc.message, media if exc.status != 415 else JSON)) from None
    return decoded, now, media


def saturated(service: Service, media: str) -> Answer:
    """503 UNAVAILABLE with Retry-After: nothing of the request was kept, so the Collector's retry counts once."""
    service.telemetry.ingest_requests.labels(status="503").inc()
    message = "the pipeline is saturated; nothing of this request was accepted"
    return status(503, UNAVAILABLE, message, media, {"Retry-After": "1"})


@dataclass(frozen=True)
class Signal:
    """What differs between the signals in the protocol: names, and the protobuf response encoder."""

    request: str  # "ExportLogsServiceRequest"
    resource_field: str  # "resourceLogs"
    rejected_field: str  # "rejectedLogRecords"
    encode_response_protobuf: Callable[[int, str], bytes]

    def accepted(self, service: Service, media: str, rejected: int, message: str) -> Answer:
        """200: `{}`, or a partial success naming how many items were rejected and why."""
        service.telemetry.ingest_requests.labels(status="200").inc()
        if media == PROTOBUF:
            return 200, self.encode_response_protobuf(rejected, message), {}, media
        if not rejected:
            return 200, b"{}", {}, media
        partial = {self.rejected_field: str(rejected), "errorMessage": message}
        return 200, encode_json({"partialSuccess": partial}), {}, media

    def route_docs(self, extra: dict[int, dict[str, Any]] | None = None) -> dict[str, Any]:
        """`responses` and `openapi_extra` for the signal's route; `extra` adds the signal's own answers (404)."""
        responses: dict[int, dict[str, Any]] = {
            200: {"description": f"`{{}}`, or `{{\"partialSuccess\": {{\"{self.rejected_field}\": \"N\", "
                                 f"\"errorMessage\": …}}}}`"},
            400: {**STATUS_DOC, "description": f"not JSON, or not an {self.request} (google.rpc.Status)"},
            413: {**STATUS_DOC, "description": "body over server.max_body_bytes (before or after decompression)"},
            415: {**STATUS_DOC, "description": "not application/json or application/x-protobuf, or an unknown "
                                               "Content-Encoding"},
            503: {**STATUS_DOC, "description": "pipeline saturated: retry after Retry-After seconds"},
        }
        responses = dict(sorted({**responses, **(extra or {})}.items()))
        body = {"required": True, "content": {
            JSON: {"schema": {"type": "object", "description": f"{self.request}, OTLP JSON encoding",
                              "properties": {self.resource_field: {"type": "array", "items": {"type": "object"}}}}},
            PROTOBUF: {"schema": {"type": "string", "format": "binary",
                                  "description": f"{self.request}, binary protobuf"}},
        }}
        return {"responses": responses, "openapi_extra": {"requestBody": body}}
