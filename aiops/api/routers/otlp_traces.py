"""POST /v1/traces: OTLP/HTTP traces, so an OpenTelemetry Collector's `otlphttp` exporter can push here.

The protocol is that of POST /v1/metrics (`aiops.api.routers.otlp`): an `ExportTraceServiceRequest`
in JSON or binary protobuf, optionally gzip/deflate; the answer in the request's encoding —

- 200 `{}`, or `{"partialSuccess": {"rejectedSpans": "N", "errorMessage": "…"}}` when some spans were
  rejected (the valid ones are kept; not to be retried);
- 400 `google.rpc.Status` `{"code": 3, "message": "…"}` when the body is not JSON/protobuf or not shaped
  like the request; 413 over `server.max_body_bytes`; 415 another Content-Type or Content-Encoding;
- 503 `{"code": 14, …}` with `Retry-After` when the pipeline is saturated — checked before the spans
  are folded in, so nothing of a refused request was counted and the Collector's retry counts once.

Decoding is `ingest.otlp_traces`; the spans go to `Service.traces` (`aiops.traces.TraceMonitor`), whose
closed intervals become metric points published like any other; a new service-map edge is recorded
as a change event and the map saved (also every `detection.checkpoint_every_s`), off the event loop.
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from aiops.api.deps import ServiceDep
from aiops.api.routers._push import BodyTooLarge, publish, read_limited
from aiops.api.routers.otlp import (  # the metrics route's answer helpers: one protocol, one way to answer
    _INVALID_ARGUMENT, _JSON, _PROTOBUF, _UNAVAILABLE, Answer, _encode, _media_type, _status,
)
from aiops.pipeline import METRICS_TOPIC, IngestItem
from aiops.service import Service
from aiops.traces import NewEdge
from ingest.otlp import OtlpBodyError, decompress
from ingest.otlp_traces import encode_traces_response_protobuf

__all__ = ["PATH", "handle_export", "router"]

log = logging.getLogger(__name__)

PATH = "/v1/traces"
router = APIRouter(tags=["otlp"])


async def handle_export(service: Service, request: Request) -> Answer:
    """Status, body, extra headers and media type of the answer to one trace export request."""
    settings = service.settings.server
    telemetry = service.telemetry
    media = _media_type(request.headers.get("content-type"))
    if media not in (_JSON, _PROTOBUF):
        telemetry.ingest_requests.labels(status="415").inc()
        return _status(415, _INVALID_ARGUMENT, f"Content-Type {media or 'missing'!r} is not supported: "
                                               f"send {_JSON} or {_PROTOBUF}")
    limit = settings.max_body_bytes
    decoder = service.otlp_traces_decoder
    try:
        raw = await read_limited(request.stream(), request.headers.get("content-length"), limit)
        body = decompress(raw, request.headers.get("content-encoding"), limit)
        now = service.clock()
        decoded = decoder.decode(body, now) if media == _JSON else decoder.decode_protobuf(body, now)
    except BodyTooLarge:
        telemetry.ingest_requests.labels(status="413").inc()
        return _status(413, _INVALID_ARGUMENT, f"body larger than the limit of {limit} bytes (server.max_body_bytes)",
                       media)
    except OtlpBodyError as exc:
        telemetry.ingest_requests.labels(status=str(exc.status)).inc()
        return _status(exc.status, _INVALID_ARGUMENT, exc.message, media if exc.status != 415 else _JSON)
    if len(decoded.spans):
        if not await _room(service, settings.ingest_wait_s):
            telemetry.ingest_requests.labels(status="503").inc()
            message = "the pipeline is saturated; nothing of this request was accepted"
            return _status(503, _UNAVAILABLE, message, media, {"Retry-After": "1"})
        batch, new_edges = service.traces.observe(decoded.spans)
        if len(batch) and not await publish(service, IngestItem(batch, now), settings.ingest_wait_s):
            log.warning("traces: %d RED points dropped: the bus filled up after room was seen", len(batch))  # a race
        telemetry.points_accepted.inc(len(batch))
        if new_edges or service.traces.save_due(now):
            await run_in_threadpool(_record, service, new_edges, now)
    telemetry.spans_accepted.inc(len(decoded.spans))
    for r in decoded.rejected:
        telemetry.spans_rejected.labels(field=r.field).inc()
    telemetry.ingest_requests.labels(status="200").inc()
    rejected, message = len(decoded.rejected), decoded.error_message()
    if media == _PROTOBUF:
        return 200, encode_traces_response_protobuf(rejected, message), {}, media
    if not rejected:
        return 200, b"{}", {}, media
    return 200, _encode({"partialSuccess": {"rejectedSpans": str(rejected), "errorMessage": message}}), {}, media


async def _room(service: Service, wait_s: float) -> bool:
    """Whether the bus has room for one more batch, waiting (without blocking the loop) up to `wait_s`."""
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


def _record(service: Service, edges: list[NewEdge], now: float) -> None:
    """New edges as change events, and the map saved (off the event loop: a store write)."""
    with service.store.begin() as conn:
        if edges:
            service.traces.record_new_edges(conn, edges, now)
        service.traces.save(conn, now)


_STATUS = {"model": None, "content": {"application/json": {"example": {"code": 3, "message": "malformed JSON: …"}}}}


@router.post(
    PATH,
    summary="OTLP/HTTP traces export (JSON or protobuf)",
    responses={
        200: {"description": "`{}`, or `{\"partialSuccess\": {\"rejectedSpans\": \"N\", \"errorMessage\": …}}`"},
        400: {**_STATUS, "description": "not JSON, or not an ExportTraceServiceRequest (google.rpc.Status)"},
        404: {"description": "traces are disabled (traces.enabled: false)"},
        413: {**_STATUS, "description": "body over server.max_body_bytes (before or after decompression)"},
        415: {**_STATUS, "description": "not application/json or application/x-protobuf, or an unknown Content-Encoding"},
        503: {**_STATUS, "description": "pipeline saturated: retry after Retry-After seconds"},
    },
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "description": "ExportTraceServiceRequest, OTLP JSON encoding",
        "properties": {"resourceSpans": {"type": "array", "items": {"type": "object"}}}}},
        "application/x-protobuf": {"schema": {"type": "string", "format": "binary",
                                              "description": "ExportTraceServiceRequest, binary protobuf"}}}}},
)
async def export_traces(request: Request, service: ServiceDep) -> Response:
    if not service.settings.traces.enabled:
        raise HTTPException(404, "traces are disabled (traces.enabled: false)")
    status, body, headers, media = await handle_export(service, request)
    return Response(body, status, headers=headers, media_type=media)
