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

Decoding is `ingest.otlp`; negotiating, reading the body and answering are the OTLP/HTTP protocol shared
with /v1/logs and /v1/traces (`aiops.api.routers.otlp_http`); publishing with backpressure is shared with
POST /api/v1/metrics (`aiops.api.routers._push`).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from aiops.api.deps import ServiceDep
from aiops.api.routers._push import publish
from aiops.api.routers.otlp_http import Answer, Refused, Signal, read_export, saturated
from aiops.pipeline import IngestItem
from aiops.service import Service
from ingest.otlp import encode_response_protobuf

__all__ = ["PATH", "SIGNAL", "handle_export", "router"]

PATH = "/v1/metrics"
SIGNAL = Signal("ExportMetricsServiceRequest", "resourceMetrics", "rejectedDataPoints", encode_response_protobuf)
router = APIRouter(tags=["otlp"])


async def handle_export(service: Service, request: Request) -> Answer:
    """Status, body, extra headers and media type of the answer to one export request."""
    decoder = service.otlp_decoder
    try:
        decoded, now, media = await read_export(service, request, decoder)
    except Refused as refused:
        return refused.answer
    accepted = len(decoded.batch)
    if accepted and not await publish(service, IngestItem(decoded.batch, now), service.settings.server.ingest_wait_s):
        return saturated(service, media)
    decoder.commit(decoded)
    telemetry = service.telemetry
    telemetry.points_accepted.inc(accepted)
    for r in decoded.rejected:
        telemetry.points_rejected.labels(field=r.field or "item").inc()
    return SIGNAL.accepted(service, media, len(decoded.rejected), decoded.error_message())


@router.post(PATH, summary="OTLP/HTTP metrics export (JSON or protobuf)", **SIGNAL.route_docs())
async def export_metrics(request: Request, service: ServiceDep) -> Response:
    status, body, headers, media = await handle_export(service, request)
    return Response(body, status, headers=headers, media_type=media)
