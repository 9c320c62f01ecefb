"""POST /api/v1/config/reload: apply an edited settings file without a restart."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from aiops.api.deps import ServiceDep
from aiops.config_loader import ConfigError

router = APIRouter(prefix="/api/v1/config", tags=["config"])


class ReloadPublic(BaseModel):
    applied: bool
    kept_detectors: int
    new_detectors: int
    rerouted_series: int
    restart_required: list[str]


@router.post(
    "/reload",
    response_model=ReloadPublic,
    summary="Re-read the settings file; apply detection and alerting live",
    responses={422: {"description": "the file is invalid; nothing was applied (every error listed)"}},
)
def reload_config(service: ServiceDep):
    try:
        result = service.reload()
    except ConfigError as exc:
        errors = [{"source": i.source, "line": i.line, "field": i.path, "message": i.message} for i in exc.issues]
        return JSONResponse({"detail": "invalid settings; nothing was applied", "errors": errors}, 422)
    return ReloadPublic(applied=True, restart_required=result.restart_required, **vars(result.report))
