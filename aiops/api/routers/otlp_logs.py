"""POST /v1/logs: OTLP/HTTP logs, so an OpenTelemetry Collector's `otlphttp` exporter can push logs here.

Spec: OTLP 1.x "OTLP/HTTP" (opentelemetry.io/docs/specs/otlp/#otlphttp: "OTLP/HTTP Request",
"OTLP/HTTP Response", "Full Success", "Partial Success", "Failures", "Throttling") and "JSON Protobuf
Encoding". Request: an `ExportLogsServiceRequest` as `application/json` or `application/x-protobuf`
(the exporter's default), optionally `Content-Encoding: gzip`. Answers, in the request's encoding, are
those of POST /v1/metrics (`aiops.api.routers.otlp`):

- 200 `{}`; 200 `{"partialSuccess": {"rejectedLogRecords": "N", "errorMessage": "…"}}` when some records
  were rejected (the valid ones are kept; the Collector must not retry);
- 400 `google.rpc.Status` `{"code": 3, …}` for a body that is not JSON/protobuf or not shaped like the
  request; 413 over `server.max_body_bytes`; 415 another Content-Type or Content-Encoding (JSON);
- 503 `{"code": 14, …}` with `Retry-After` when the pipeline has had no room for `server.ingest_wait_s`:
  nothing of the request was kept;
- 404 `{"code": 12, …}` (UNIMPLEMENTED) when `logs.enabled` is false.

Records are decoded by `ingest.otlp_logs` and mined and counted by the service's `LogAnomalies` in a worker
thread (mining is a loop over lines); the intervals that closed come back as points of
`log_template_count` / `log_error_count`, which go through the same point decoder, registry, bus and
backpressure as POST /api/v1/metrics. Once mined, records are counted: if the bus fills between the room
check and the publish, the points wait for the next request instead of the request being refused (a
retry would count the records twice).
"""

from __future__ import annotations

import asyncio

import msgspec
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from aiops.api.deps import ServiceDep
from aiops.api.routers._push import BodyTooLarge, publish, read_limited
from aiops.api.routers.otlp import _INVALID_ARGUMENT, _JSON, _PROTOBUF, _STATUS, _UNAVAILABLE, Answer, _media_type, _status
from aiops.pipeline import METRICS_TOPIC, IngestItem
from aiops.service import Service
from ingest.otlp import OtlpBodyError, decompress
from ingest.otlp_logs import encode_logs_response_protobuf

__all__ = ["PATH", "handle_logs_export", "router"]

PATH = "/v1/logs"
router = APIRouter(tags=["otlp"])

_encode = msgspec.json.Encoder().encode
_UNIMPLEMENTED = 12  # google.rpc.Code


async def handle_logs_export(service: Service, request: Request) -> Answer:
    """Status, body, extra headers and media type of the answer to one logs export request."""
    settings = service.settings.server
    telemetry = service.telemetry
    media = _media_type(request.headers.get("content-type"))
    if media not in (_JSON, _PROTOBUF):
        telemetry.ingest_requests.labels(status="415").inc()
        return _status(415, _INVALID_ARGUMENT, f"Content-Type {media or 'missing'!r} is not supported: "
                                               f"send {_JSON} or {_PROTOBUF}")
    if service.logs is None:
        return _status(404, _UNIMPLEMENTED, "logs are not accepted here (logs.enabled is false)", media)
    limit = settings.max_body_bytes
    decoder = service.otlp_logs_decoder
    try:
        raw = await read_limited(request.stream(), request.headers.get("content-length"), limit)
        body = decompress(raw, request.headers.get("content-encoding"), limit)
        now = service.clock()
        decode = decoder.decode if media == _JSON else decoder.decode_protobuf
        decoded = await run_in_threadpool(decode, body, now)
    except BodyTooLarge:
        telemetry.ingest_requests.labels(status="413").inc()
        return _status(413, _INVALID_ARGUMENT, f"body larger than the limit of {limit} bytes (server.max_body_bytes)", media)
    except OtlpBodyError as exc:
        telemetry.ingest_requests.labels(status=str(exc.status)).inc()
        return _status(exc.status, _INVALID_ARGUMENT, exc.message, media if exc.status != 415 else _JSON)
    if decoded.records:
        if not await _room(service, settings.ingest_wait_s):
            telemetry.ingest_requests.labels(status="503").inc()
            message = "the pipeline is saturated; nothing of this request was accepted"
            return _status(503, _UNAVAILABLE, message, media, {"Retry-After": "1"})
        points = await run_in_threadpool(service.logs.observe, decoded.records, now)
        if points:
            await _publish_points(service, points, now)
    telemetry.ingest_requests.labels(status="200").inc()
    telemetry.log_records.labels(outcome="accepted").inc(len(decoded.records))
    telemetry.log_records.labels(outcome="rejected").inc(len(decoded.rejected))
    rejected, message = len(decoded.rejected), decoded.error_message()
    if media == _PROTOBUF:
        return 200, encode_logs_response_protobuf(rejected, message), {}, media
    if not rejected:
        return 200, b"{}", {}, media
    partial = {"rejectedLogRecords": str(rejected), "errorMessage": message}
    return 200, _encode({"partialSuccess": partial}), {}, media


async def _room(service: Service, wait_s: float) -> bool:
    """Whether the bus has room, waiting for it (without blocking the event loop) up to `wait_s`."""
    bus = service.bus
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    delay = 0.001
    while bus.depth(METRICS_TOPIC) >= bus.capacity(METRICS_TOPIC):
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.05)
    return True


async def _publish_points(service: Service, points: list[dict], now: float) -> None:
    """Closed intervals' counts through the metric path; kept for the next request if the bus stays full."""
    batch = service.logs.batch(points, now)
    if not len(batch):
        return
    if await publish(service, IngestItem(batch, now), service.settings.server.ingest_wait_s):
        service.telemetry.points_accepted.inc(len(batch))
    else:
        service.logs.requeue(points)


@router.post(
    PATH,
    summary="OTLP/HTTP logs export (JSON or protobuf)",
    responses={
        200: {"description": "`{}`, or `{\"partialSuccess\": {\"rejectedLogRecords\": \"N\", \"errorMessage\": …}}`"},
        400: {**_STATUS, "description": "not JSON, or not an ExportLogsServiceRequest (google.rpc.Status)"},
        404: {**_STATUS, "description": "logs are disabled (logs.enabled: false)"},
        413: {**_STATUS, "description": "body over server.max_body_bytes (before or after decompression)"},
        415: {**_STATUS, "description": "not application/json or application/x-protobuf, or an unknown Content-Encoding"},
        503: {**_STATUS, "description": "pipeline saturated: retry after Retry-After seconds"},
    },
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "description": "ExportLogsServiceRequest, OTLP JSON encoding",
        "properties": {"resourceLogs": {"type": "array", "items": {"type": "object"}}}}},
        "application/x-protobuf": {"schema": {"type": "string", "format": "binary",
                                              "description": "ExportLogsServiceRequest, binary protobuf"}}}}},
)
async def export_logs(request: Request, service: ServiceDep) -> Response:
    status, body, headers, media = await handle_logs_export(service, request)
    return Response(body, status, headers=headers, media_type=media)
