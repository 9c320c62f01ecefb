"""Liveness, readiness and the service's own Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from aiops.api.deps import ServiceDep

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: the store is migrated and the pipeline consumes the bus")
def readyz(service: ServiceDep) -> JSONResponse:
    checks = {"store": service.ready and service.store.ping(), "pipeline": service.ready}
    ready = all(checks.values())
    return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)


@router.get("/metrics", summary="Prometheus exposition of the service's own metrics", response_class=Response)
def metrics(service: ServiceDep) -> Response:
    return Response(service.telemetry.exposition(), media_type=CONTENT_TYPE_LATEST)
