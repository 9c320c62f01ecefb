"""Notifications: what was sent (or is waiting, or failed) to which receiver, with the error if any."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import select

from aiops.api.deps import ServiceDep
from aiops.api.filters import parse_cursor
from aiops.store import ListQuery, repository
from aiops.store.schema import notifications

router = APIRouter(prefix="/api/v1", tags=["notifications"])


class NotificationPublic(BaseModel):
    id: int
    idempotency_key: str
    created_at: float
    receiver: str
    integration: str
    action: str
    reason: str
    subject: str
    incident_id: int | None
    payload: dict[str, Any]
    state: str
    attempts: int
    next_attempt_at: float
    sent_at: float | None
    last_error: str | None


class NotificationPage(BaseModel):
    items: list[NotificationPublic]
    next_cursor: str | None


@router.get("/notifications", response_model=NotificationPage, summary="List notifications, newest first")
def list_notifications(
    service: ServiceDep,
    state: Annotated[Literal["pending", "sent", "failed"] | None, Query()] = None,
    receiver: Annotated[str | None, Query(max_length=128)] = None,
    incident_id: Annotated[int | None, Query(ge=1)] = None,
    cursor: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> NotificationPage:
    after = parse_cursor(cursor)
    c = notifications.c
    filters = [
        *([c.state == state] if state else []),
        *([c.receiver == receiver] if receiver else []),
        *([c.incident_id == incident_id] if incident_id else []),
    ]
    with service.store.begin() as conn:
        found = repository.page(conn, select(notifications).where(*filters), c.id, ListQuery(cursor=after, limit=limit))
    return NotificationPage(items=found.items, next_cursor=found.next_cursor)
