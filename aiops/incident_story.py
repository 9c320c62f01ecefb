"""What an incident is about, read from the store: its alerts, the changes before it, its likely origins.

The API's incident detail and every notification tell the same story, so both read it here.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from aiops.incidents import rank_origins
from aiops.store import ListQuery, repository
from aiops.store.schema import alerts, incident_alerts, incident_timeline, incidents

__all__ = ["incident_row", "member_alerts", "related_changes", "story", "timeline"]


def incident_row(conn: Connection, incident_id: int) -> dict[str, Any] | None:
    found = conn.execute(select(incidents).where(incidents.c.id == incident_id)).first()
    return None if found is None else dict(found._mapping)


def member_alerts(conn: Connection, incident_id: int) -> list[dict[str, Any]]:
    """The incident's alerts, oldest onset first, each with `firing_in_incident`."""
    rows = conn.execute(
        select(alerts, incident_alerts.c.firing.label("firing_in_incident"))
        .join(incident_alerts, incident_alerts.c.alert_id == alerts.c.id)
        .where(incident_alerts.c.incident_id == incident_id)
        .order_by(alerts.c.first_seen)
    )
    return [dict(r._mapping) for r in rows]


def timeline(conn: Connection, incident_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(incident_timeline).where(incident_timeline.c.incident_id == incident_id).order_by(incident_timeline.c.id)
    )
    return [{"ts": r.ts, "actor": r.actor, "kind": r.kind, "detail": r.detail} for r in rows]


def related_changes(conn: Connection, incident: dict[str, Any], lookback_s: float) -> list[dict[str, Any]]:
    """Change events up to `lookback_s` before the incident opened that touch its services or its labels, nearest first.

    A change without a `service` label (a cluster-wide config push) counts for every service; any
    label the incident's alerts share must agree.
    """
    opened = incident["opened_at"]
    changes = repository.list_change_events(conn, ListQuery(start=opened - lookback_s, end=opened, limit=1000)).items
    services = set(incident["services"])
    related = [
        c for c in changes
        if ("service" not in c["labels"] or c["labels"]["service"] in services)
        and all(c["labels"].get(k, v) == v for k, v in incident["labels"].items())
    ]
    related.sort(key=lambda c: opened - c["ts"])
    return related


def story(conn: Connection, incident_id: int, topology: dict[str, list[str]], lookback_s: float) -> dict[str, Any] | None:
    """The incident row with `alerts`, `likely_causes` and `origins`; None if there is no such incident."""
    row = incident_row(conn, incident_id)
    if row is None:
        return None
    members = member_alerts(conn, incident_id)
    return {
        **row,
        "alerts": members,
        "likely_causes": related_changes(conn, row, lookback_s),
        "origins": rank_origins(members, topology),
    }
