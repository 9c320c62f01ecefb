"""The FastAPI application: routers, error shapes and the service's lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from aiops import __version__
from aiops.api.routers import (
    alerts, anomalies, config, events, forecasts, health, incidents, ingest, notifications, otlp, otlp_logs,
    otlp_traces, remediation, silences, topology,
)
from aiops.api.routers.ingest import IngestFastPath
from aiops.service import Service

__all__ = ["create_app"]

Hook = Callable[[FastAPI], object]


def create_app(service: Service, on_started: list[Hook] | None = None, demo: object | None = None) -> FastAPI:
    """An app serving `service`; the service starts and stops with the app's lifespan.

    `on_started` hooks run once the service is ready (the demo feeder uses one); each may return an
    awaitable-free cleanup callable, called at shutdown. With `demo` (an `aiops.demo.runtime.DemoRuntime`)
    the demo's control endpoint and pager are served under /demo.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.start()
        cleanups = [hook(app) for hook in on_started or []]
        try:
            yield
        finally:
            for cleanup in reversed(cleanups):
                if callable(cleanup):
                    await _maybe_await(cleanup())
            service.stop()

    app = FastAPI(
        title="aiops",
        version=__version__,
        summary="Anomaly detection, alerting and closed-loop remediation for SRE teams",
        lifespan=lifespan,
    )
    app.state.service = service
    if demo is not None:
        from aiops.demo.runtime import router as demo_router

        app.state.demo = demo
        app.include_router(demo_router)
    for module in (health, ingest, otlp, otlp_logs, otlp_traces, anomalies, alerts, incidents, events, silences,
                   notifications, remediation, forecasts, config, topology):
        app.include_router(module.router)
    app.add_middleware(IngestFastPath, service=service)

    @app.exception_handler(HTTPException)
    async def _http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"detail": exc.detail, "field": None}, exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        field = ".".join(str(p) for p in first["loc"])
        if first.get("type") == "json_invalid":  # not JSON at all: 400, as for ingest
            return JSONResponse({"detail": f"malformed JSON: {first['msg']}", "field": "body"}, 400)
        return JSONResponse(
            {"detail": f"{field}: {first['msg']}", "field": field, "errors": [
                {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in errors
            ]},
            422,
        )

    return app


async def _maybe_await(value: object) -> None:
    if hasattr(value, "__await__"):
        await value  # type: ignore[misc]
