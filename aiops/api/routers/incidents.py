"""Incidents: list, detail (alerts, timeline, likely-cause changes, origins), acknowledge, remediate, comment, resolve."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import String, cast, select

from aiops.api.deps import ServiceDep
from aiops import incident_story
from aiops.api.filters import parse_cursor, parse_time
from aiops.store import ListQuery, repository
from aiops.store.schema import incidents

router = APIRouter(prefix="/api/v1", tags=["incidents"])


class IncidentPublic(BaseModel):
    id: int
    state: str
    severity: str
    title: str
    labels: dict[str, str]
    services: list[str]
    group_key: str
    opened_at: float
    updated_at: float
    acknowledged_at: float | None
    acknowledged_by: str | None
    resolved_at: float | None
    alert_count: int
    escalation_policy: str | None
    escalation_step: int
    escalation_next_at: float | None = Field(description="when the next escalation step pages; null: not escalating")


class IncidentPage(BaseModel):
    items: list[IncidentPublic]
    next_cursor: str | None


class TimelineEntry(BaseModel):
    ts: float
    actor: str
    kind: str
    detail: dict[str, Any]


class IncidentDetail(IncidentPublic):
    alerts: list[dict[str, Any]]
    timeline: list[TimelineEntry]
    likely_causes: list[dict[str, Any]] = Field(
        description="change events that may have caused its alerts: to the likeliest origin first, then the shortest lead"
    )
    origins: list[dict[str, Any]] = Field(description="its services, most likely origin first, with the reasons")


class Actor(BaseModel):
    model_config = ConfigDict(extra="forbid")

    by: str = Field(min_length=1, max_length=128)


class Comment(Actor):
    text: str = Field(min_length=1, max_length=4000)


class Remediation(Actor):
    note: str = Field("", max_length=4000, description="what is being done, e.g. the runbook or the change")


class Resolution(Actor):
    comment: str = Field("", max_length=4000)


@router.get("/incidents", response_model=IncidentPage, summary="List incidents, newest first")
def list_incidents(
    service: ServiceDep,
    state: Annotated[Literal["open", "acknowledged", "remediating", "resolved"] | None, Query()] = None,
    severity: Annotated[Literal["warning", "critical"] | None, Query()] = None,
    affects: Annotated[str | None, Query(max_length=256, description="only incidents involving this service")] = None,
    start: Annotated[str | None, Query(description="opened at or after (unix seconds or ISO-8601)")] = None,
    end: Annotated[str | None, Query(description="opened before (unix seconds or ISO-8601)")] = None,
    cursor: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> IncidentPage:
    after = parse_cursor(cursor)
    c = incidents.c
    since, until = parse_time(start, "start"), parse_time(end, "end")
    filters = [
        *([c.state == state] if state else []),
        *([c.severity == severity] if severity else []),
        # services is a JSON list of names: its text holds the name in quotes, on SQLite and PostgreSQL alike
        *([cast(c.services, String).like(f"%{_like_literal(json.dumps(affects))}%", escape="\\")] if affects else []),
        *([c.opened_at >= since] if since is not None else []),
        *([c.opened_at < until] if until is not None else []),
    ]
    with service.store.begin() as conn:
        found = repository.page(conn, select(incidents).where(*filters), c.id, ListQuery(cursor=after, limit=limit))
    return IncidentPage(items=found.items, next_cursor=found.next_cursor)


@router.get("/incidents/{incident_id}", response_model=IncidentDetail, summary="An incident with its story")
def get_incident(incident_id: int, service: ServiceDep) -> IncidentDetail:
    settings = service.settings.alerting.incidents
    with service.store.begin() as conn:
        found = incident_story.story(conn, incident_id, service.incidents.topology(), settings.change_lookback_s)
        if found is None:
            raise HTTPException(404, f"incident {incident_id} not found")
        entries = [TimelineEntry(**e) for e in incident_story.timeline(conn, incident_id)]
    return IncidentDetail(**found, timeline=entries)


@router.post("/incidents/{incident_id}/acknowledge", response_model=IncidentPublic, summary="Acknowledge")
def acknowledge(incident_id: int, body: Actor, service: ServiceDep) -> IncidentPublic:
    return _act(service, incident_id, lambda conn, now: service.incidents.acknowledge(conn, incident_id, now, body.by))


@router.post("/incidents/{incident_id}/comments", response_model=IncidentPublic, summary="Comment")
def comment(incident_id: int, body: Comment, service: ServiceDep) -> IncidentPublic:
    return _act(service, incident_id, lambda conn, now: service.incidents.comment(conn, incident_id, now, body.by, body.text),
                allow_resolved=True)


@router.post("/incidents/{incident_id}/remediate", response_model=IncidentPublic, summary="Mark as being remediated")
def remediate(incident_id: int, body: Remediation, service: ServiceDep) -> IncidentPublic:
    detail = {"note": body.note} if body.note else {}
    return _act(service, incident_id,
                lambda conn, now: service.incidents.remediating(conn, incident_id, now, body.by, detail))


@router.post("/incidents/{incident_id}/resolve", response_model=IncidentPublic, summary="Resolve")
def resolve(incident_id: int, body: Resolution, service: ServiceDep) -> IncidentPublic:
    reason = body.comment or f"resolved by {body.by}"
    return _act(service, incident_id, lambda conn, now: service.incidents.resolve(conn, incident_id, now, body.by, reason))


def _like_literal(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _act(service, incident_id: int, action, allow_resolved: bool = False) -> IncidentPublic:
    now = service.clock()
    with service.store.begin() as conn:
        row = _incident(conn, incident_id)
        if row["state"] == "resolved" and not allow_resolved:
            raise HTTPException(409, f"incident {incident_id} is already resolved")
        action(conn, now)
        row = _incident(conn, incident_id)
    return IncidentPublic(**row)


def _incident(conn, incident_id: int) -> dict[str, Any]:
    found = incident_story.incident_row(conn, incident_id)
    if found is None:
        raise HTTPException(404, f"incident {incident_id} not found")
    return found
