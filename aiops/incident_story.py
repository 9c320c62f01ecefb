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


def related_changes(
    conn: Connection, incident: dict[str, Any], lookback_s: float, members: list[dict[str, Any]], origin: str | None = None
) -> list[dict[str, Any]]:
    """Change events that may have caused the incident's alerts, most likely first.

    A candidate touches one of the incident's services (a change without a `service` label, such as a
    cluster-wide config push, counts for all) and agrees with the labels its alerts share; it lies
    between `lookback_s` before the incident opened and the onset of its latest alert, and some
    alert began after it (a change after every onset explains none). Each gets `lead_s`, the time
    from it to the next onset. Order: changes to the likeliest origin service, then changes without
    a service, then the rest; within each, the shortest lead first.
    """
    onsets = sorted(a["first_seen"] for a in members)
    last_onset = max([incident["opened_at"], *onsets])
    changes = repository.list_change_events(
        conn, ListQuery(start=incident["opened_at"] - lookback_s, end=last_onset, limit=1000)
    ).items
    services = set(incident["services"])
    related = []
    for c in changes:
        service = c["labels"].get("service")
        if service is not None and service not in services:
            continue
        if not all(c["labels"].get(k, v) == v for k, v in incident["labels"].items()):
            continue
        following = [t for t in onsets if t >= c["ts"]]
        if onsets and not following:
            continue
        lead = (following[0] if following else incident["opened_at"]) - c["ts"]
        related.append({**c, "lead_s": lead, "_tier": 0 if service == origin and origin else 1 if service is None else 2})
    related.sort(key=lambda c: (c["_tier"], c["lead_s"]))
    return [{k: v for k, v in c.items() if k != "_tier"} for c in related]


def story(conn: Connection, incident_id: int, topology: dict[str, list[str]], lookback_s: float) -> dict[str, Any] | None:
    """The incident row with `alerts`, `likely_causes` and `origins`; None if there is no such incident."""
    row = incident_row(conn, incident_id)
    if row is None:
        return None
    members = member_alerts(conn, incident_id)
    origins = rank_origins(members, topology)
    top = origins[0]["service"] if origins else None
    return {
        **row,
        "alerts": members,
        "likely_causes": related_changes(conn, row, lookback_s, members, top),
        "origins": origins,
    }
