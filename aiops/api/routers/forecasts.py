"""Forecasts: the latest forecast of each watched series, with its model, backtest error and crossing."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel
from sqlalchemy import select

from aiops.api.deps import ServiceDep
from aiops.api.filters import list_query
from aiops.store import ListQuery, repository
from aiops.store.schema import forecasts, series

router = APIRouter(prefix="/api/v1", tags=["forecasts"])


class ForecastPublic(BaseModel):
    series_id: int
    name: str
    labels: dict[str, str]
    created_at: float
    status: str
    reason: str
    model: str
    backtest_error: float | None
    level: float
    kind: str
    ts: list[float]
    yhat: list[float | None]
    lower: list[float | None]
    upper: list[float | None]
    threshold: float | None
    direction: str
    earliest: float | None
    likely: float | None
    latest: float | None


class ForecastPage(BaseModel):
    items: list[ForecastPublic]
    next_cursor: str | None


@router.get("/forecasts", response_model=ForecastPage, summary="Latest forecasts (filter by series, name, labels)")
def list_forecasts(
    service: ServiceDep,
    query: Annotated[ListQuery, Depends(list_query)],
    series_id: Annotated[int | None, Query(ge=0, alias="series")] = None,
) -> ForecastPage:
    conditions = repository.series_conditions(forecasts.c.series_id, query.name, query.labels)
    if series_id is not None:
        conditions.append(forecasts.c.series_id == series_id)
    stmt = (select(forecasts, series.c.name, series.c.labels)
            .join(series, series.c.id == forecasts.c.series_id).where(*conditions))
    with service.store.begin() as conn:
        found = repository.page(conn, stmt, forecasts.c.series_id, query)
    return ForecastPage(items=[_public(r) for r in found.items], next_cursor=found.next_cursor)


def _public(row: dict[str, Any]) -> ForecastPublic:
    return ForecastPublic(**{**row, "labels": dict(row["labels"])})
