"""POST /api/v1/metrics: a JSON batch of points in, per-item verdicts out.

The body is read raw and decoded by `ingest.points` (msgspec plus vectorized checks) rather than
through a pydantic request model: that is what keeps one worker above a million points per second.
The OpenAPI schema still documents the body (see `_BODY_SCHEMA`).
"""

from __future__ import annotations

import asyncio

import msgspec
from fastapi import APIRouter, Request
from fastapi.responses import Response

from aiops.api.deps import ServiceDep
from aiops.api.schemas import IngestResult, Problem
from aiops.pipeline import METRICS_TOPIC, IngestItem
from ingest.points import BodyError

router = APIRouter(prefix="/api/v1", tags=["ingest"])

_POINT_SCHEMA = {
    "type": "object",
    "required": ["name", "value"],
    "properties": {
        "name": {"type": "string", "maxLength": 256},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "ts": {
            "oneOf": [{"type": "number"}, {"type": "string", "format": "date-time"}],
            "description": "unix seconds (values above 1e11 are milliseconds) or ISO-8601; default: time of receipt",
        },
        "value": {"type": "number"},
    },
}
_BODY_SCHEMA = {
    "oneOf": [
        {"type": "object", "required": ["points"], "properties": {"points": {"type": "array", "items": _POINT_SCHEMA}}},
        {"type": "array", "items": _POINT_SCHEMA},
    ]
}
_encode = msgspec.json.Encoder().encode


class _TooLarge(Exception):
    pass


def _problem(status: int, detail: str, field: str | None = None, headers: dict | None = None) -> Response:
    return Response(_encode({"detail": detail, "field": field}), status, headers=headers, media_type="application/json")


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/metrics",
    status_code=202,
    summary="Push a batch of metric points",
    response_model=IngestResult,
    responses={
        400: {"model": Problem, "description": "the body is not JSON"},
        413: {"model": Problem, "description": "the body is larger than server.max_body_bytes"},
        422: {"model": Problem, "description": "the body is JSON of the wrong shape"},
        503: {"model": Problem, "description": "the pipeline is saturated; retry after Retry-After seconds"},
    },
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": _BODY_SCHEMA}}}},
)
async def push_metrics(request: Request, service: ServiceDep) -> Response:
    settings = service.settings.server
    telemetry = service.telemetry
    try:
        body = await _read_body(request, settings.max_body_bytes)
    except _TooLarge:
        telemetry.ingest_requests.labels(status="413").inc()
        return _problem(413, f"body larger than the limit of {settings.max_body_bytes} bytes (server.max_body_bytes)")
    now = service.clock()
    try:
        decoded = service.decoder.decode(body, now)
    except BodyError as exc:
        telemetry.ingest_requests.labels(status=str(exc.status)).inc()
        return _problem(exc.status, exc.message, exc.path)
    if len(decoded.batch) and not await _publish(service, IngestItem(decoded.batch, now), settings.ingest_wait_s):
        telemetry.ingest_requests.labels(status="503").inc()
        return _problem(503, "the pipeline is saturated; nothing of this batch was accepted", headers={"Retry-After": "1"})
    accepted = len(decoded.batch)
    telemetry.points_accepted.inc(accepted)
    for r in decoded.rejected:
        telemetry.points_rejected.labels(field=r.field or "item").inc()
    telemetry.ingest_requests.labels(status="202").inc()
    result = {
        "accepted": accepted,
        "rejected": len(decoded.rejected),
        "errors": [{"index": r.index, "field": r.field, "reason": r.reason} for r in decoded.rejected],
    }
    return Response(_encode(result), 202, media_type="application/json")


async def _publish(service, item: IngestItem, wait_s: float) -> bool:
    """Put the item on the bus, waiting (without blocking the event loop) for room up to `wait_s`."""
    if service.bus.try_publish(METRICS_TOPIC, item):
        return True
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    delay = 0.001
    while loop.time() < deadline:
        await asyncio.sleep(delay)
        if service.bus.try_publish(METRICS_TOPIC, item):
            return True
        delay = min(delay * 2, 0.05)
    return False
