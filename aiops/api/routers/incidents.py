"""Incidents: list, detail (alerts, timeline, likely-cause changes), acknowledge, comment, resolve."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from aiops.api.deps import ServiceDep
from aiops.incidents import rank_origins
from aiops.api.filters import parse_cursor
from aiops.store import ListQuery, repository
from aiops.store.schema import alerts, incident_alerts, incident_timeline, incidents

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
    likely_causes: list[dict[str, Any]] = Field(description="change events shortly before the incident, nearest first")
    origins: list[dict[str, Any]] = Field(description="its services, most likely origin first, with the reasons")


class Actor(BaseModel):
    model_config = ConfigDict(extra="forbid")

    by: str = Field(min_length=1, max_length=128)


class Comment(Actor):
    text: str = Field(min_length=1, max_length=4000)


class Resolution(Actor):
    comment: str = Field("", max_length=4000)


@router.get("/incidents", response_model=IncidentPage, summary="List incidents, newest first")
def list_incidents(
    service: ServiceDep,
    state: Annotated[Literal["open", "acknowledged", "remediating", "resolved"] | None, Query()] = None,
    cursor: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> IncidentPage:
    after = parse_cursor(cursor)
    stmt = select(incidents).where(*([incidents.c.state == state] if state else []))
    with service.store.begin() as conn:
        found = repository.page(conn, stmt, incidents.c.id, ListQuery(cursor=after, limit=limit))
    return IncidentPage(items=found.items, next_cursor=found.next_cursor)


@router.get("/incidents/{incident_id}", response_model=IncidentDetail, summary="An incident with its story")
def get_incident(incident_id: int, service: ServiceDep) -> IncidentDetail:
    with service.store.begin() as conn:
        row = _incident(conn, incident_id)
        members = conn.execute(
            select(alerts, incident_alerts.c.firing.label("firing_in_incident"))
            .join(incident_alerts, incident_alerts.c.alert_id == alerts.c.id)
            .where(incident_alerts.c.incident_id == incident_id)
            .order_by(alerts.c.first_seen)
        )
        alert_rows = [dict(r._mapping) for r in members]
        timeline = [
            TimelineEntry(ts=r.ts, actor=r.actor, kind=r.kind, detail=r.detail)
            for r in conn.execute(
                select(incident_timeline).where(incident_timeline.c.incident_id == incident_id).order_by(incident_timeline.c.id)
            )
        ]
        lookback = service.settings.alerting.incidents.change_lookback_s
        changes = repository.list_change_events(
            conn, ListQuery(start=row["opened_at"] - lookback, end=row["opened_at"], limit=1000)
        ).items
    services = set(row["services"])
    related = [
        c for c in changes
        if ("service" not in c["labels"] or c["labels"]["service"] in services)
        and all(c["labels"].get(k, v) == v for k, v in row["labels"].items())
    ]
    related.sort(key=lambda c: row["opened_at"] - c["ts"])
    origins = rank_origins(alert_rows, service.settings.alerting.incidents.topology)
    return IncidentDetail(**row, alerts=alert_rows, timeline=timeline, likely_causes=related, origins=origins)


@router.post("/incidents/{incident_id}/acknowledge", response_model=IncidentPublic, summary="Acknowledge")
def acknowledge(incident_id: int, body: Actor, service: ServiceDep) -> IncidentPublic:
    return _act(service, incident_id, lambda conn, now: service.incidents.acknowledge(conn, incident_id, now, body.by))


@router.post("/incidents/{incident_id}/comments", response_model=IncidentPublic, summary="Comment")
def comment(incident_id: int, body: Comment, service: ServiceDep) -> IncidentPublic:
    return _act(service, incident_id, lambda conn, now: service.incidents.comment(conn, incident_id, now, body.by, body.text),
                allow_resolved=True)


@router.post("/incidents/{incident_id}/resolve", response_model=IncidentPublic, summary="Resolve")
def resolve(incident_id: int, body: Resolution, service: ServiceDep) -> IncidentPublic:
    reason = body.comment or f"resolved by {body.by}"
    return _act(service, incident_id, lambda conn, now: service.incidents.resolve(conn, incident_id, now, body.by, reason))


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
    found = conn.execute(select(incidents).where(incidents.c.id == incident_id)).first()
    if found is None:
        raise HTTPException(404, f"incident {incident_id} not found")
    return dict(found._mapping)
