"""POST /v1/traces: OTLP/HTTP traces, so an OpenTelemetry Collector's `otlphttp` exporter can push here.

Spec: OTLP 1.x "OTLP/HTTP" (opentelemetry.io/docs/specs/otlp/#otlphttp). The protocol is that of POST
/v1/metrics, shared in `aiops.api.routers.otlp_http`: an `ExportTraceServiceRequest`
in JSON or binary protobuf, optionally gzip/deflate; the answer in the request's encoding —

- 200 `{}`, or `{"partialSuccess": {"rejectedSpans": "N", "errorMessage": "…"}}` when some spans were
  rejected (the valid ones are kept; not to be retried);
- 400 `google.rpc.Status` `{"code": 3, "message": "…"}` when the body is not JSON/protobuf or not shaped
  like the request; 413 over `server.max_body_bytes`; 415 another Content-Type or Content-Encoding;
- 503 `{"code": 14, …}` with `Retry-After` when the pipeline is saturated — checked before the spans
  are folded in, so nothing of a refused request was counted and the Collector's retry counts once;
- 404 `{"code": 12, …}` (UNIMPLEMENTED) when `traces.enabled` is false.

Decoding is `ingest.otlp_traces`; the spans go to `Service.traces` (`aiops.traces.TraceMonitor`), whose
closed intervals become metric points published like any other; a new service-map edge is recorded
as a change event and the map saved (also every `detection.checkpoint_every_s`), off the event loop.
In `server.mode: api-only` the spans go to `kafka.topics.spans` instead (by trace id; 503 when the
producer's buffer stays full), and the workers aggregate them (aiops.partition_traces).
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from aiops.api.deps import ServiceDep
from aiops.api.routers._push import produce, publish, wait_for_room
from aiops.api.routers.otlp_http import STATUS_DOC, Answer, Refused, Signal, read_export, saturated
from aiops.pipeline import IngestItem
from aiops.service import Service
from aiops.traces import NewEdge
from ingest.otlp_traces import encode_traces_response_protobuf

__all__ = ["PATH", "SIGNAL", "handle_export", "router"]

log = logging.getLogger(__name__)

PATH = "/v1/traces"
SIGNAL = Signal("ExportTraceServiceRequest", "resourceSpans", "rejectedSpans", encode_traces_response_protobuf)
router = APIRouter(tags=["otlp"])


async def handle_export(service: Service, request: Request) -> Answer:
    """Status, body, extra headers and media type of the answer to one trace export request."""
    decoder = service.otlp_traces_decoder
    disabled = None if service.settings.traces.enabled else "traces are not accepted here (traces.enabled is false)"
    try:
        decoded, now, media = await read_export(service, request, decoder, disabled=disabled)
    except Refused as refused:
        return refused.answer
    telemetry = service.telemetry
    if len(decoded.spans) and service.span_producer is not None:  # api-only: the workers aggregate them
        if not await produce(service.span_producer.send, decoded.spans, "spans"):
            return saturated(service, media)
    elif len(decoded.spans):
        wait_s = service.settings.server.ingest_wait_s
        if not await wait_for_room(service, wait_s):
            return saturated(service, media)
        batch, new_edges = service.traces.observe(decoded.spans)
        if len(batch):
            if await publish(service, IngestItem(batch, now), wait_s):
                telemetry.points_accepted.inc(len(batch))
            else:  # a race: the bus filled up after room was seen
                log.warning("traces: %d RED points dropped: the bus filled up after room was seen", len(batch))
        if new_edges or service.traces.save_due(now):
            await run_in_threadpool(_record, service, new_edges, now)
    telemetry.spans_accepted.inc(len(decoded.spans))
    for r in decoded.rejected:
        telemetry.spans_rejected.labels(field=r.field).inc()
    return SIGNAL.accepted(service, media, len(decoded.rejected), decoded.error_message())


def _record(service: Service, edges: list[NewEdge], now: float) -> None:
    """New edges as change events, and the map saved (off the event loop: a store write)."""
    with service.store.begin() as conn:
        if edges:
            service.traces.record_new_edges(conn, edges, now)
        service.traces.save(conn, now)


@router.post(PATH, summary="OTLP/HTTP traces export (JSON or protobuf)", **SIGNAL.route_docs(
    {404: {**STATUS_DOC, "description": "traces are disabled (traces.enabled: false)"}}))
async def export_traces(request: Request, service: ServiceDep) -> Response:
    status, body, headers, media = await handle_export(service, request)
    return Response(body, status, headers=headers, media_type=media)
