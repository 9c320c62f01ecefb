"""POST/GET /api/v1/events: change events (deploys, config changes, tickets) to correlate with.

Automation platforms post what changed and where (labels such as service and cluster); incidents
list the changes that happened shortly before them as likely causes.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator

from aiops.api.deps import ServiceDep
from aiops.api.filters import list_query
from aiops.store import ListQuery, repository

router = APIRouter(prefix="/api/v1", tags=["events"])

Kind = Literal["deploy", "config", "ticket", "feature_flag", "topology", "other"]  # topology: a new traced dependency
_MAX_DETAIL_KEYS = 50


class EventCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Kind
    title: str = Field(min_length=1, max_length=256)
    source: str = Field("api", min_length=1, max_length=128, description="who reports it, e.g. jenkins, argo")
    ts: float | None = Field(None, gt=0, description="unix seconds when the change happened (default: now)")
    labels: dict[str, str] = Field(default_factory=dict, description="where: service, cluster, host, …")
    detail: dict[str, Any] = Field(default_factory=dict, description="anything else: version, commit, ticket id")

    @field_validator("labels")
    @classmethod
    def _labels(cls, labels: dict[str, str]) -> dict[str, str]:
        if len(labels) > 64:
            raise ValueError(f"at most 64 labels, got {len(labels)}")
        for key, value in labels.items():
            if not key or len(key) > 128 or len(value) > 1024:
                raise ValueError(f"label {key!r}: names 1-128 characters, values at most 1024")
        return labels

    @field_validator("detail")
    @classmethod
    def _detail(cls, detail: dict[str, Any]) -> dict[str, Any]:
        if len(detail) > _MAX_DETAIL_KEYS:
            raise ValueError(f"at most {_MAX_DETAIL_KEYS} detail keys, got {len(detail)}")
        return detail


class EventBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[EventCreate] = Field(min_length=1, max_length=1000)


class EventPublic(BaseModel):
    id: int
    ts: float
    kind: str
    title: str
    source: str
    labels: dict[str, str]
    detail: dict[str, Any]
    created_at: float


class EventPage(BaseModel):
    items: list[EventPublic]
    next_cursor: str | None


class EventsCreated(BaseModel):
    ids: list[int]


@router.post("/events", status_code=201, response_model=EventsCreated, summary="Record change events")
def post_events(body: EventCreate | EventBatch, service: ServiceDep) -> EventsCreated:
    events = body.events if isinstance(body, EventBatch) else [body]
    now = service.clock()
    rows = [
        {
            "ts": e.ts if e.ts is not None else now,
            "kind": e.kind,
            "title": e.title,
            "source": e.source,
            "labels": e.labels,
            "detail": e.detail,
            "created_at": now,
        }
        for e in events
    ]
    with service.store.begin() as conn:
        ids = repository.insert_change_events(conn, rows)
        repository.append_audit(
            conn,
            [
                {"ts": now, "actor": row["source"], "action": "event.recorded", "subject": f"event:{i}",
                 "detail": {"kind": row["kind"], "title": row["title"]}}
                for i, row in zip(ids, rows)
            ],
        )
    return EventsCreated(ids=ids)


@router.get("/events", response_model=EventPage, summary="List change events (filters, cursor pagination)")
def get_events(
    service: ServiceDep,
    query: Annotated[ListQuery, Depends(list_query)],
    kind: Annotated[Kind | None, Query()] = None,
) -> EventPage:
    with service.store.begin() as conn:
        page = repository.list_change_events(conn, replace(query, kind=kind))
    return EventPage(items=page.items, next_cursor=page.next_cursor)
