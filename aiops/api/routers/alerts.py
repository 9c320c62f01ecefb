"""GET /api/v1/alerts: alerts, one per fingerprint while firing, newest first."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query

from aiops.api.deps import ServiceDep
from aiops.api.filters import list_query
from aiops.api.schemas import AlertPage
from aiops.store import ListQuery, repository

router = APIRouter(prefix="/api/v1", tags=["alerts"])


@router.get("/alerts", response_model=AlertPage, summary="List alerts (filters, cursor pagination)")
def list_alerts(
    service: ServiceDep,
    query: Annotated[ListQuery, Depends(list_query)],
    state: Annotated[Literal["firing", "resolved"] | None, Query()] = None,
) -> AlertPage:
    with service.store.begin() as conn:
        page = repository.list_alerts(conn, replace(query, state=state))
    return AlertPage(items=page.items, next_cursor=page.next_cursor)
