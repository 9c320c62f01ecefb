"""POST /v1/metrics: OTLP/HTTP metrics, so an OpenTelemetry Collector's `otlphttp` exporter can push here.

Spec: OTLP 1.x "OTLP/HTTP" (opentelemetry.io/docs/specs/otlp/#otlphttp). Request: an
`ExportMetricsServiceRequest`, `Content-Type: application/json` (the JSON encoding) or
`application/x-protobuf` (binary, the exporter's default), optionally `Content-Encoding: gzip` (the
exporter's default compression). The answer is in the encoding of the request, as the spec requires:

- 200 `{}` when every data point was accepted; 200 `{"partialSuccess": {"rejectedDataPoints": "N",
  "errorMessage": "…"}}` (int64 as a decimal string) when some were rejected — a success, not to be retried;
- 400 with a `google.rpc.Status` body `{"code": 3, "message": "…"}` (INVALID_ARGUMENT) when the body is
  not JSON/protobuf or not shaped like the request — permanent, the Collector drops it;
- 413, and 415 (another Content-Type, or an unknown Content-Encoding, answered in JSON) with the same
  Status shape — permanent;
- 503 `{"code": 14, …}` (UNAVAILABLE) with `Retry-After` when the pipeline is saturated — the Collector
  retries, honouring Retry-After.

Decoding is `ingest.otlp`; reading the body and publishing with backpressure are shared with
POST /api/v1/metrics (`aiops.api.routers._push`). /v1/logs and /v1/traces are not served yet.
"""

from __future__ import annotations

import msgspec
from fastapi import APIRouter, Request
from fastapi.responses import Response

from aiops.api.deps import ServiceDep
from aiops.api.routers._push import BodyTooLarge, publish, read_limited
from aiops.pipeline import IngestItem
from aiops.service import Service
from ingest.otlp import OtlpBodyError, decompress, encode_response_protobuf, encode_status_protobuf

__all__ = ["PATH", "handle_export", "router"]

PATH = "/v1/metrics"
router = APIRouter(tags=["otlp"])

_encode = msgspec.json.Encoder().encode
_INVALID_ARGUMENT, _UNAVAILABLE = 3, 14  # google.rpc.Code


_JSON, _PROTOBUF = "application/json", "application/x-protobuf"
Answer = tuple[int, bytes, dict[str, str], str]  # status, body, extra headers, media type


def _status(http: int, code: int, message: str, media: str = _JSON, headers: dict[str, str] | None = None) -> Answer:
    if media == _PROTOBUF:
        return http, encode_status_protobuf(code, message), headers or {}, media
    return http, _encode({"code": code, "message": message}), headers or {}, _JSON


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


async def handle_export(service: Service, request: Request) -> Answer:
    """Status, body, extra headers and media type of the answer to one export request."""
    settings = service.settings.server
    telemetry = service.telemetry
    media = _media_type(request.headers.get("content-type"))
    if media not in (_JSON, _PROTOBUF):
        telemetry.ingest_requests.labels(status="415").inc()
        return _status(415, _INVALID_ARGUMENT, f"Content-Type {media or 'missing'!r} is not supported: "
                                               f"send {_JSON} or {_PROTOBUF}")
    limit = settings.max_body_bytes
    decoder = service.otlp_decoder
    try:
        raw = await read_limited(request.stream(), request.headers.get("content-length"), limit)
        body = decompress(raw, request.headers.get("content-encoding"), limit)
        now = service.clock()
        decoded = decoder.decode(body, now) if media == _JSON else decoder.decode_protobuf(body, now)
    except BodyTooLarge:
        telemetry.ingest_requests.labels(status="413").inc()
        message = f"body larger than the limit of {limit} bytes (server.max_body_bytes)"
        return _status(413, _INVALID_ARGUMENT, message, media)
    except OtlpBodyError as exc:
        telemetry.ingest_requests.labels(status=str(exc.status)).inc()
        return _status(exc.status, _INVALID_ARGUMENT, exc.message, media if exc.status != 415 else _JSON)
    accepted = len(decoded.batch)
    if accepted and not await publish(service, IngestItem(decoded.batch, now), settings.ingest_wait_s):
        telemetry.ingest_requests.labels(status="503").inc()
        message = "the pipeline is saturated; nothing of this request was accepted"
        return _status(503, _UNAVAILABLE, message, media, {"Retry-After": "1"})
    decoder.commit(decoded)
    telemetry.points_accepted.inc(accepted)
    for r in decoded.rejected:
        telemetry.points_rejected.labels(field=r.field or "item").inc()
    telemetry.ingest_requests.labels(status="200").inc()
    rejected, message = len(decoded.rejected), decoded.error_message()
    if media == _PROTOBUF:
        return 200, encode_response_protobuf(rejected, message), {}, media
    if not rejected:
        return 200, b"{}", {}, media
    partial = {"rejectedDataPoints": str(rejected), "errorMessage": message}
    return 200, _encode({"partialSuccess": partial}), {}, media


_STATUS = {"model": None, "content": {"application/json": {"example": {"code": 3, "message": "malformed JSON: …"}}}}


@router.post(
    PATH,
    summary="OTLP/HTTP metrics export (JSON or protobuf)",
    responses={
        200: {"description": "`{}`, or `{\"partialSuccess\": {\"rejectedDataPoints\": \"N\", \"errorMessage\": …}}`"},
        400: {**_STATUS, "description": "not JSON, or not an ExportMetricsServiceRequest (google.rpc.Status)"},
        413: {**_STATUS, "description": "body over server.max_body_bytes (before or after decompression)"},
        415: {**_STATUS, "description": "not application/json or application/x-protobuf, or an unknown Content-Encoding"},
        503: {**_STATUS, "description": "pipeline saturated: retry after Retry-After seconds"},
    },
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "description": "ExportMetricsServiceRequest, OTLP JSON encoding",
        "properties": {"resourceMetrics": {"type": "array", "items": {"type": "object"}}}}},
        "application/x-protobuf": {"schema": {"type": "string", "format": "binary",
                                              "description": "ExportMetricsServiceRequest, binary protobuf"}}}}},
)
async def export_metrics(request: Request, service: ServiceDep) -> Response:
    status, body, headers, media = await handle_export(service, request)
    return Response(body, status, headers=headers, media_type=media)
