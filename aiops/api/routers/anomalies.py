"""GET /api/v1/anomalies: anomalies found by the detectors, newest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from aiops.api.deps import ServiceDep
from aiops.api.filters import list_query
from aiops.api.schemas import AnomalyPage
from aiops.store import ListQuery, repository

router = APIRouter(prefix="/api/v1", tags=["anomalies"])


@router.get("/anomalies", response_model=AnomalyPage, summary="List anomalies (filters, cursor pagination)")
def list_anomalies(service: ServiceDep, query: Annotated[ListQuery, Depends(list_query)]) -> AnomalyPage:
    with service.store.begin() as conn:
        page = repository.list_anomalies(conn, query)
    return AnomalyPage(items=page.items, next_cursor=page.next_cursor)
