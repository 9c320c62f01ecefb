"""POST /v1/metrics: OTLP/HTTP metrics in JSON, so an OpenTelemetry Collector's `otlphttp` exporter can push here.

Spec: OTLP 1.x "OTLP/HTTP" (opentelemetry.io/docs/specs/otlp/#otlphttp). Request: an
`ExportMetricsServiceRequest` in the JSON encoding, `Content-Type: application/json`, optionally
`Content-Encoding: gzip` (the exporter's default compression). Answers:

- 200 `{}` when every data point was accepted; 200 `{"partialSuccess": {"rejectedDataPoints": "N",
  "errorMessage": "…"}}` (int64 as a decimal string) when some were rejected — a success, not to be retried;
- 400 with a `google.rpc.Status` body `{"code": 3, "message": "…"}` (INVALID_ARGUMENT) when the body is
  not JSON or not shaped like the request — permanent, the Collector drops it;
- 413 and 415 (protobuf, or an unknown Content-Encoding) with the same Status shape — permanent;
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
from ingest.otlp import OtlpBodyError, decompress

__all__ = ["PATH", "handle_export", "router"]

PATH = "/v1/metrics"
router = APIRouter(tags=["otlp"])

_encode = msgspec.json.Encoder().encode
_INVALID_ARGUMENT, _UNAVAILABLE = 3, 14  # google.rpc.Code


def _status(
    http: int, code: int, message: str, headers: dict[str, str] | None = None
) -> tuple[int, bytes, dict[str, str]]:
    return http, _encode({"code": code, "message": message}), headers or {}


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


async def handle_export(service: Service, request: Request) -> tuple[int, bytes, dict[str, str]]:
    """Status, JSON body and extra headers of the answer to one export request."""
    settings = service.settings.server
    telemetry = service.telemetry
    media = _media_type(request.headers.get("content-type"))
    if media != "application/json":
        telemetry.ingest_requests.labels(status="415").inc()
        hint = " (set `encoding: json` on the Collector's otlphttp exporter)" if "protobuf" in media else ""
        return _status(415, _INVALID_ARGUMENT, f"Content-Type {media or 'missing'!r} is not supported: "
                                               f"send application/json{hint}")
    limit = settings.max_body_bytes
    try:
        raw = await read_limited(request.stream(), request.headers.get("content-length"), limit)
        body = decompress(raw, request.headers.get("content-encoding"), limit)
        now = service.clock()
        decoded = service.otlp_decoder.decode(body, now)
    except BodyTooLarge:
        telemetry.ingest_requests.labels(status="413").inc()
        return _status(413, _INVALID_ARGUMENT, f"body larger than the limit of {limit} bytes (server.max_body_bytes)")
    except OtlpBodyError as exc:
        telemetry.ingest_requests.labels(status=str(exc.status)).inc()
        return _status(exc.status, _INVALID_ARGUMENT, exc.message)
    accepted = len(decoded.batch)
    if accepted and not await publish(service, IngestItem(decoded.batch, now), settings.ingest_wait_s):
        telemetry.ingest_requests.labels(status="503").inc()
        return _status(503, _UNAVAILABLE, "the pipeline is saturated; nothing of this request was accepted",
                       {"Retry-After": "1"})
    service.otlp_decoder.commit(decoded)
    telemetry.points_accepted.inc(accepted)
    for r in decoded.rejected:
        telemetry.points_rejected.labels(field=r.field or "item").inc()
    telemetry.ingest_requests.labels(status="200").inc()
    if not decoded.rejected:
        return 200, b"{}", {}
    partial = {"rejectedDataPoints": str(len(decoded.rejected)), "errorMessage": decoded.error_message()}
    return 200, _encode({"partialSuccess": partial}), {}


_STATUS = {"model": None, "content": {"application/json": {"example": {"code": 3, "message": "malformed JSON: …"}}}}


@router.post(
    PATH,
    summary="OTLP/HTTP metrics export (JSON)",
    responses={
        200: {"description": "`{}`, or `{\"partialSuccess\": {\"rejectedDataPoints\": \"N\", \"errorMessage\": …}}`"},
        400: {**_STATUS, "description": "not JSON, or not an ExportMetricsServiceRequest (google.rpc.Status)"},
        413: {**_STATUS, "description": "body over server.max_body_bytes (before or after decompression)"},
        415: {**_STATUS, "description": "not application/json, or an unsupported Content-Encoding"},
        503: {**_STATUS, "description": "pipeline saturated: retry after Retry-After seconds"},
    },
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "description": "ExportMetricsServiceRequest, OTLP JSON encoding",
        "properties": {"resourceMetrics": {"type": "array", "items": {"type": "object"}}}}}}}},
)
async def export_metrics(request: Request, service: ServiceDep) -> Response:
    status, body, headers = await handle_export(service, request)
    return Response(body, status, headers=headers, media_type="application/json")
