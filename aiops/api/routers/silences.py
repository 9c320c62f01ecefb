"""Silences through the API: create, list, expire. Alerts they match are recorded but muted."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from aiops.api.deps import ServiceDep
from aiops.matchers import SelectorError, parse_selector
from aiops.api.filters import parse_cursor
from aiops.store import ListQuery, repository

router = APIRouter(prefix="/api/v1", tags=["silences"])


class SilenceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    selector: str = Field(min_length=2, max_length=1024, description='e.g. {cluster="eu-1", service=~"batch-.*"}')
    starts_at: float | None = Field(None, gt=0, description="unix seconds (default: now)")
    ends_at: float | None = Field(None, gt=0, description="unix seconds; or give duration_s")
    duration_s: float | None = Field(None, gt=0, le=90 * 86400)
    comment: str = Field(min_length=1, max_length=1024)
    created_by: str = Field(min_length=1, max_length=128)

    @field_validator("selector")
    @classmethod
    def _parses(cls, text: str) -> str:
        try:
            selector = parse_selector(text)
        except SelectorError as exc:
            raise ValueError(str(exc)) from None
        if not selector.matchers:
            raise ValueError("a silence must match something: give at least one label matcher")
        return text

    @model_validator(mode="after")
    def _one_end(self) -> SilenceCreate:
        if (self.ends_at is None) == (self.duration_s is None):
            raise ValueError("give exactly one of ends_at and duration_s")
        return self


class SilencePublic(BaseModel):
    id: int
    selector: str
    starts_at: float
    ends_at: float
    comment: str
    created_by: str
    created_at: float


class SilencePage(BaseModel):
    items: list[SilencePublic]
    next_cursor: str | None


@router.post("/silences", status_code=201, response_model=SilencePublic, summary="Create a silence")
def create_silence(body: SilenceCreate, service: ServiceDep) -> SilencePublic:
    now = service.clock()
    starts = body.starts_at if body.starts_at is not None else now
    ends = body.ends_at if body.ends_at is not None else starts + body.duration_s
    if ends <= starts:
        raise HTTPException(422, f"ends_at ({ends}) must be after starts_at ({starts})")
    if ends <= now:
        raise HTTPException(422, f"the silence would already be over (ends_at {ends} is in the past)")
    row = {"selector": body.selector, "starts_at": starts, "ends_at": ends, "comment": body.comment,
           "created_by": body.created_by, "created_at": now}
    with service.store.begin() as conn:
        silence_id = repository.insert_silence(conn, row)
        repository.append_audit(conn, [{"ts": now, "actor": body.created_by, "action": "silence.created",
                                        "subject": f"silence:{silence_id}", "detail": row}])
    service.silences.put(silence_id, body.selector, starts, ends, body.comment)
    return SilencePublic(id=silence_id, **row)


@router.get("/silences", response_model=SilencePage, summary="List silences")
def list_silences(
    service: ServiceDep,
    state: Annotated[Literal["active", "pending", "expired"] | None, Query()] = None,
    cursor: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> SilencePage:
    after = parse_cursor(cursor)
    with service.store.begin() as conn:
        page = repository.list_silences(conn, ListQuery(state=state, cursor=after, limit=limit), now=service.clock())
    return SilencePage(items=page.items, next_cursor=page.next_cursor)


@router.delete("/silences/{silence_id}", response_model=SilencePublic, summary="Expire a silence now")
def expire_silence(silence_id: int, service: ServiceDep, by: Annotated[str, Query(min_length=1, max_length=128)] = "api"):
    now = service.clock()
    with service.store.begin() as conn:
        row = repository.get_silence(conn, silence_id)
        if row is None:
            raise HTTPException(404, f"silence {silence_id} not found")
        row["ends_at"] = min(row["ends_at"], now)
        repository.update_silence(conn, silence_id, {"ends_at": row["ends_at"]})
        repository.append_audit(conn, [{"ts": now, "actor": by, "action": "silence.expired",
                                        "subject": f"silence:{silence_id}", "detail": {}}])
    service.silences.put(silence_id, row["selector"], row["starts_at"], row["ends_at"], row["comment"])
    return SilencePublic(**row)
