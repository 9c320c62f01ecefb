"""POST /v1/logs: OTLP/HTTP logs, so an OpenTelemetry Collector's `otlphttp` exporter can push logs here.

Spec: OTLP 1.x "OTLP/HTTP" (opentelemetry.io/docs/specs/otlp/#otlphttp: "OTLP/HTTP Request",
"OTLP/HTTP Response", "Full Success", "Partial Success", "Failures", "Throttling") and "JSON Protobuf
Encoding". Request: an `ExportLogsServiceRequest` as `application/json` or `application/x-protobuf`
(the exporter's default), optionally `Content-Encoding: gzip`. Answers, in the request's encoding, are
those of POST /v1/metrics (the shared protocol is `aiops.api.routers.otlp_http`):

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

In `server.mode: api-only` the records are not mined here: they go as they are to `kafka.topics.logs`
(ingest.kafka_logs, keyed by log source), and the `aiops worker` owning a source's partition mines them.
If the producer's buffer stays full for `server.ingest_wait_s` or the broker cannot be reached, the
answer is 503 with Retry-After and nothing of the request was taken.
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
from ingest.otlp_logs import encode_logs_response_protobuf

__all__ = ["PATH", "SIGNAL", "handle_logs_export", "router"]

PATH = "/v1/logs"
SIGNAL = Signal("ExportLogsServiceRequest", "resourceLogs", "rejectedLogRecords", encode_logs_response_protobuf)
router = APIRouter(tags=["otlp"])
log = logging.getLogger(__name__)


async def handle_logs_export(service: Service, request: Request) -> Answer:
    """Status, body, extra headers and media type of the answer to one logs export request."""
    decoder = service.otlp_logs_decoder
    disabled = "logs are not accepted here (logs.enabled is false)" if service.logs is None else None
    try:  # decoding a large request takes a while: in a thread
        decoded, now, media = await read_export(service, request, decoder, disabled=disabled, in_thread=True)
    except Refused as refused:
        return refused.answer
    if decoded.records and service.log_producer is not None:  # api-only: the workers mine them
        if not await produce(service.log_producer.send, decoded.records, "logs"):
            return saturated(service, media)
    elif decoded.records:
        if not await wait_for_room(service, service.settings.server.ingest_wait_s):
            return saturated(service, media)
        points = await run_in_threadpool(service.logs.observe, decoded.records, now)
        if points:
            await _publish_points(service, points, now)
    telemetry = service.telemetry
    telemetry.log_records.labels(outcome="accepted").inc(len(decoded.records))
    telemetry.log_records.labels(outcome="rejected").inc(len(decoded.rejected))
    return SIGNAL.accepted(service, media, len(decoded.rejected), decoded.error_message())


async def _publish_points(service: Service, points: list[dict], now: float) -> None:
    """Closed intervals' counts through the metric path; kept for the next request if the bus stays full."""
    batch = service.logs.batch(points, now)
    if not len(batch):
        return
    if await publish(service, IngestItem(batch, now), service.settings.server.ingest_wait_s):
        service.telemetry.points_accepted.inc(len(batch))
    else:
        service.logs.requeue(points)


@router.post(PATH, summary="OTLP/HTTP logs export (JSON or protobuf)", **SIGNAL.route_docs(
    {404: {**STATUS_DOC, "description": "logs are disabled (logs.enabled: false)"}}))
async def export_logs(request: Request, service: ServiceDep) -> Response:
    status, body, headers, media = await handle_logs_export(service, request)
    return Response(body, status, headers=headers, media_type=media)
