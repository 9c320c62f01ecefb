"""POST /api/v1/metrics: a JSON batch of points in, per-item verdicts out.

The body is read raw and decoded by `ingest.points` (msgspec plus vectorized checks) rather than
through a pydantic request model, and `IngestFastPath` serves this one path straight from ASGI,
ahead of the framework's routing, dependency resolution and middleware: measured with
`bench/ingest.py`, that takes one worker from about 0.9 M to well over 1 M points/s. The FastAPI
route below runs the same code; it documents the endpoint in the OpenAPI schema and serves it when
the app is used without the fast path.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
from fastapi import APIRouter, Request
from fastapi.responses import Response

from aiops.api.deps import ServiceDep
from aiops.api.schemas import IngestResult, Problem
from aiops.api.routers._push import BodyTooLarge, publish, read_limited
from aiops.pipeline import IngestItem
from aiops.service import Service
from ingest.points import BodyError

__all__ = ["IngestFastPath", "PATH", "router"]

PATH = "/api/v1/metrics"
router = APIRouter(tags=["ingest"])

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
_JSON = [(b"content-type", b"application/json")]


async def handle_push(
    service: Service, chunks: AsyncIterator[bytes], declared_length: str | None
) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """Status, JSON body and extra headers of the answer to one ingest request."""
    settings = service.settings.server
    telemetry = service.telemetry
    try:
        body = await read_limited(chunks, declared_length, settings.max_body_bytes)
    except BodyTooLarge:
        telemetry.ingest_requests.labels(status="413").inc()
        detail = f"body larger than the limit of {settings.max_body_bytes} bytes (server.max_body_bytes)"
        return 413, _encode({"detail": detail, "field": None}), []
    now = service.clock()
    try:
        decoded = service.decoder.decode(body, now)
    except BodyError as exc:
        telemetry.ingest_requests.labels(status=str(exc.status)).inc()
        return exc.status, _encode({"detail": exc.message, "field": exc.path}), []
    if len(decoded.batch) and not await publish(service, IngestItem(decoded.batch, now), settings.ingest_wait_s):
        telemetry.ingest_requests.labels(status="503").inc()
        detail = "the pipeline is saturated; nothing of this batch was accepted"
        return 503, _encode({"detail": detail, "field": None}), [(b"retry-after", b"1")]
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
    return 202, _encode(result), []


@router.post(
    PATH,
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
    status, body, headers = await handle_push(service, request.stream(), request.headers.get("content-length"))
    return Response(body, status, headers={k.decode(): v.decode() for k, v in headers}, media_type="application/json")


class IngestFastPath:
    """ASGI middleware answering POST /api/v1/metrics itself; every other request passes through."""

    def __init__(self, app, service: Service) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        declared = None
        for key, value in scope["headers"]:
            if key == b"content-length":
                declared = value.decode("latin-1")
                break
        status, body, headers = await handle_push(self.service, _chunks(receive), declared)
        length = [(b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": _JSON + length + headers})
        await send({"type": "http.response.body", "body": body})


async def _chunks(receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return
