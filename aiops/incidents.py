"""Incidents: alerts that belong together, one lifecycle and one timeline.

An opening alert joins the open incident with the same *group key* that was updated within
`window_s`, else it opens a new one. The key is made of the alert's `group_by` labels (the cluster,
by default) and of its service's component in the dependency map (`topology`): services that call
each other share incidents, so a slow database and the two services waiting on it page once.
An incident resolves by itself when every alert in it has resolved; people acknowledge, comment on,
mark as being remediated and resolve it through the API (the remediation executor does the same).
An incident whose first alert matches an escalation policy pages its steps until acknowledged (see
`aiops.escalation`).

Several processes share the incidents table (Kafka workers, each with some of the alerts; the API
process acknowledging): the store, not this manager's cache, decides. An opening alert reads its
group's open incident from the store under a transaction lock on the group key (PostgreSQL advisory
lock; SQLite has one writer), so alerts of one component handled by two workers join one incident; an
incident resolves when no alert of it is firing in the store; an escalation step is taken by a
compare-and-set on (state open, step, round), so an incident acknowledged or escalated by another
process is not paged again here (the cache is refreshed from the store instead). Every step goes to its timeline with who or what caused it, and listeners
(the notifier) hear of acknowledgements, remediation and resolution in the same transaction.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import zlib

from sqlalchemy import Connection, insert, select, text, update

from aiops.alerts import AlertEvent
from aiops.escalation import Escalations
from aiops.settings import IncidentSettings
from aiops.store.schema import incident_alerts, incident_timeline, incidents

__all__ = ["IncidentManager", "Page", "components_of", "rank_origins"]

_RANK = {"warning": 1, "critical": 2}
_LOCK_SPACE = 0x1C1D  # pg_advisory_xact_lock(space, key): incident group keys


def components_of(topology: dict[str, list[str]]) -> dict[str, str]:
    """service → a name for its connected component in the dependency map (union-find)."""
    parent: dict[str, str] = {}

    def find(s: str) -> str:
        parent.setdefault(s, s)
        while parent[s] != s:
            parent[s] = parent[parent[s]]
            s = parent[s]
        return s

    for caller, callees in topology.items():
        for callee in callees:
            a, b = find(caller), find(callee)
            if a != b:
                parent[max(a, b)] = min(a, b)
    return {s: find(s) for s in parent}


def _locked(method):
    """The pipeline thread and API requests both change incidents: one at a time."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)

    return wrapper


@dataclass(frozen=True)
class Page:
    """An escalation step that is due: notify `receiver` of the incident."""

    incident_id: int
    receiver: str
    step: int
    round: int


Listener = Callable[[Connection, int, str, str, float], None]  # (conn, incident id, change, actor, now)


class IncidentManager:
    """`topology`: returns the current dependency map (the service map merged from traces and config,
    `aiops.topology.ServiceMap.adjacency`); default: the configured map. It must return the same
    object while the map is unchanged: components are recomputed when it returns another."""

    def __init__(self, settings: IncidentSettings, escalations: Escalations | None = None,
                 topology: Callable[[], dict[str, list[str]]] | None = None) -> None:
        self._lock = threading.RLock()
        self._topology_of = topology
        self._seen_topology: dict[str, list[str]] | None = None
        self.configure(settings)
        self.escalations = escalations or Escalations()
        self.listeners: list[Listener] = []
        self._open: dict[str, dict[str, Any]] = {}  # group key → open incident row
        self._incident_of: dict[int, int] = {}  # alert id → incident id (open incidents only)

    def configure(self, settings: IncidentSettings) -> None:
        self.settings = settings
        self._seen_topology = None  # recompute components on next use

    def topology(self) -> dict[str, list[str]]:
        """The dependency map in use now: service → the services it calls."""
        return self._topology_of() if self._topology_of is not None else self.settings.topology

    def _components(self) -> dict[str, str]:
        current = self.topology()
        if current is not self._seen_topology:
            self._component = components_of(current)
            self._seen_topology = current
        return self._component

    def group_key(self, labels: dict[str, str]) -> str:
        parts = [f"{k}={labels[k]}" for k in self.settings.group_by if k in labels]
        service = labels.get("service")
        if service is not None:
            parts.append(f"component={self._components().get(service, service)}")
        return ",".join(parts) or "ungrouped"

    @_locked
    def load(self, conn: Connection) -> None:
        rows = conn.execute(select(incidents).where(incidents.c.state != "resolved"))
        self._open = {r.group_key: dict(r._mapping) for r in rows}
        ids = [i["id"] for i in self._open.values()]
        self._incident_of = {}
        if ids:
            links = conn.execute(select(incident_alerts).where(incident_alerts.c.incident_id.in_(ids), incident_alerts.c.firing))
            self._incident_of = {r.alert_id: r.incident_id for r in links}

    @_locked
    def apply(self, conn: Connection, events: Sequence[AlertEvent], now: float) -> list[int]:
        """Fold alert events into incidents; returns the ids of incidents opened."""
        opened = []
        for e in events:  # a loop over alert events, a few per step
            if e.event == "opened":
                incident, new = self._join(conn, e, now)
                if new:
                    opened.append(incident["id"])
            elif e.event == "updated" and e.alert_id in self._incident_of:
                self._touch(conn, self._incident_of[e.alert_id], e, now)
            elif e.event == "resolved" and e.alert_id in self._incident_of:
                self._alert_resolved(conn, e, now)
        return opened

    def _current(self, conn: Connection, key: str) -> dict[str, Any] | None:
        """The open incident of group `key` as the store has it now, locked for this transaction: another
        process (a worker, the executor, the API) may have opened, changed or resolved it."""
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:space, :key)"),
                         {"space": _LOCK_SPACE, "key": zlib.crc32(key.encode()) - 2**31})
        row = conn.execute(select(incidents).where(incidents.c.group_key == key, incidents.c.state != "resolved")
                           .order_by(incidents.c.updated_at.desc()).limit(1)).first()
        if row is None:
            self._open.pop(key, None)
            return None
        incident = self._open[key] = dict(row._mapping)
        return incident

    def _join(self, conn: Connection, e: AlertEvent, now: float) -> tuple[dict[str, Any], bool]:
        key = self.group_key(e.labels or {})
        incident = self._current(conn, key)
        if incident is not None and now - incident["updated_at"] <= self.settings.window_s:
            conn.execute(insert(incident_alerts), [{"incident_id": incident["id"], "alert_id": e.alert_id, "firing": True}])
            changes = {
                "alert_count": incident["alert_count"] + 1,  # read under the group's lock: exact
                "updated_at": now,
                "severity": max(incident["severity"], e.severity, key=_RANK.get),
                "services": sorted(set(incident["services"]) | _services(e)),
            }
            conn.execute(update(incidents).where(incidents.c.id == incident["id"]).values(**changes))
            incident.update(changes)
            self._timeline(conn, incident["id"], now, "pipeline", "alert_added", {"alert_id": e.alert_id, "summary": e.summary})
            self._incident_of[e.alert_id] = incident["id"]
            return incident, False
        shared = {k: v for k, v in (e.labels or {}).items() if k in self.settings.group_by}
        row = {
            "group_key": key,
            "state": "open",
            "severity": e.severity,
            "title": e.summary[:1024],
            "labels": shared,
            "services": sorted(_services(e)),
            "opened_at": now,
            "updated_at": now,
            "acknowledged_at": None,
            "acknowledged_by": None,
            "resolved_at": None,
            "alert_count": 1,
        }
        policy = self.escalations.policy_for(e.labels or {})
        row.update(escalation_policy=policy, escalation_step=-1, escalation_round=0,
                   escalation_next_at=now + self.escalations.delay(policy) if policy else None)
        row["id"] = int(conn.execute(insert(incidents).returning(incidents.c.id), [row]).scalar_one())
        conn.execute(insert(incident_alerts), [{"incident_id": row["id"], "alert_id": e.alert_id, "firing": True}])
        self._timeline(conn, row["id"], now, "pipeline", "opened", {"alert_id": e.alert_id, "summary": e.summary})
        self._open[key] = row
        self._incident_of[e.alert_id] = row["id"]
        return row, True

    def _touch(self, conn: Connection, incident_id: int, e: AlertEvent, now: float) -> None:
        incident = self._by_id(incident_id)
        if incident is None:
            return
        changes = {"updated_at": now, "severity": max(incident["severity"], e.severity, key=_RANK.get)}
        conn.execute(update(incidents).where(incidents.c.id == incident_id).values(**changes))
        incident.update(changes)

    def _alert_resolved(self, conn: Connection, e: AlertEvent, now: float) -> None:
        incident_id = self._incident_of.pop(e.alert_id)
        conn.execute(
            update(incident_alerts)
            .where(incident_alerts.c.incident_id == incident_id, incident_alerts.c.alert_id == e.alert_id)
            .values(firing=False)
        )
        self._timeline(conn, incident_id, now, "pipeline", "alert_resolved", {"alert_id": e.alert_id})
        firing = conn.execute(select(incident_alerts.c.alert_id).where(  # other processes' alerts count too
            incident_alerts.c.incident_id == incident_id, incident_alerts.c.firing).limit(1)).first()
        state = conn.execute(select(incidents.c.state).where(incidents.c.id == incident_id)).scalar()
        if firing is None and state != "resolved":
            self.resolve(conn, incident_id, now, actor="pipeline", reason="every alert resolved")

    @_locked
    def resolve(self, conn: Connection, incident_id: int, now: float, actor: str, reason: str) -> None:
        conn.execute(
            update(incidents).where(incidents.c.id == incident_id)
            .values(state="resolved", resolved_at=now, updated_at=now, escalation_next_at=None)
        )
        self._timeline(conn, incident_id, now, actor, "resolved", {"reason": reason})
        self._tell(conn, incident_id, "resolved", actor, now)
        self._forget(incident_id)

    def _forget(self, incident_id: int) -> None:
        for key, incident in list(self._open.items()):
            if incident["id"] == incident_id:
                del self._open[key]
        for alert_id in [a for a, i in self._incident_of.items() if i == incident_id]:
            del self._incident_of[alert_id]

    def _refresh(self, conn: Connection, incident: dict[str, Any]) -> None:
        """Re-read an incident another process changed: updated in the cache, or forgotten if resolved."""
        row = conn.execute(select(incidents).where(incidents.c.id == incident["id"])).first()
        if row is None or row.state == "resolved":
            self._forget(incident["id"])
        else:
            incident.update(row._mapping)

    @_locked
    def acknowledge(self, conn: Connection, incident_id: int, now: float, actor: str) -> None:
        changes = {"state": "acknowledged", "acknowledged_at": now, "acknowledged_by": actor, "updated_at": now,
                   "escalation_next_at": None}
        conn.execute(update(incidents).where(incidents.c.id == incident_id).values(**changes))
        self._timeline(conn, incident_id, now, actor, "acknowledged", {})
        incident = self._by_id(incident_id)
        if incident is not None:
            incident.update(changes)
        self._tell(conn, incident_id, "acknowledged", actor, now)

    @_locked
    def remediating(self, conn: Connection, incident_id: int, now: float, actor: str, detail: dict[str, Any]) -> None:
        """Someone (a person or the executor) is fixing it: escalation stops, the timeline says how."""
        changes = {"state": "remediating", "updated_at": now, "escalation_next_at": None}
        conn.execute(update(incidents).where(incidents.c.id == incident_id).values(**changes))
        self._timeline(conn, incident_id, now, actor, "remediating", detail)
        incident = self._by_id(incident_id)
        if incident is not None:
            incident.update(changes)
        self._tell(conn, incident_id, "remediating", actor, now)

    @_locked
    def remediation_failed(self, conn: Connection, incident_id: int, now: float, actor: str, detail: dict[str, Any],
                           kind: str = "remediation_failed") -> None:
        """Automation could not heal it (or healed only part of it): back to people, acknowledged if
        someone had, else open and escalating again."""
        incident = self._by_id(incident_id)
        if incident is None:  # resolved meanwhile
            return
        state = "acknowledged" if incident.get("acknowledged_at") else "open"
        policy = incident.get("escalation_policy")
        changes = {"state": state, "updated_at": now, "escalation_step": -1, "escalation_round": 0,
                   "escalation_next_at": now if policy and state == "open" else None}
        conn.execute(update(incidents).where(incidents.c.id == incident_id).values(**changes))
        incident.update(changes)
        self._timeline(conn, incident_id, now, actor, kind, detail)

    def firing_alerts_of(self, incident_id: int) -> list[int]:
        """The alerts of an open incident that are still firing."""
        with self._lock:
            return sorted(a for a, i in self._incident_of.items() if i == incident_id)

    def state_of(self, incident_id: int) -> str | None:
        """The state of an open incident this manager holds; None if resolved or unknown."""
        incident = self._by_id(incident_id)
        return None if incident is None else incident["state"]

    @_locked
    def due_pages(self, conn: Connection, now: float) -> list[Page]:
        """Advance the escalation of open incidents whose step has waited long enough."""
        pages = []
        for incident in list(self._open.values()):  # a loop over open incidents, a handful
            due = incident.get("escalation_next_at")
            if incident["state"] != "open" or due is None or due > now:
                continue
            step = self.escalations.next(incident["escalation_policy"], incident["escalation_step"],
                                         incident["escalation_round"], now)
            changes = {"escalation_step": step.step, "escalation_round": step.round, "escalation_next_at": step.next_at}
            taken = conn.execute(update(incidents).where(
                incidents.c.id == incident["id"], incidents.c.state == "open",
                incidents.c.escalation_step == incident["escalation_step"],
                incidents.c.escalation_round == incident["escalation_round"],
            ).values(**changes)).rowcount
            if taken != 1:  # acknowledged, resolved or escalated by another process meanwhile
                self._refresh(conn, incident)
                continue
            incident.update(changes)
            if step.receiver is None:
                self._timeline(conn, incident["id"], now, "escalation", "escalation_exhausted",
                               {"policy": incident["escalation_policy"]})
                continue
            detail = {"policy": incident["escalation_policy"], "step": step.step, "round": step.round,
                      "receiver": step.receiver}
            self._timeline(conn, incident["id"], now, "escalation", "escalated", detail)
            pages.append(Page(incident["id"], step.receiver, step.step, step.round))
        return pages

    def _tell(self, conn: Connection, incident_id: int, change: str, actor: str, now: float) -> None:
        for listener in self.listeners:
            listener(conn, incident_id, change, actor, now)

    @_locked
    def comment(self, conn: Connection, incident_id: int, now: float, actor: str, text: str) -> None:
        self._timeline(conn, incident_id, now, actor, "comment", {"text": text})

    def _by_id(self, incident_id: int) -> dict[str, Any] | None:
        return next((i for i in self._open.values() if i["id"] == incident_id), None)

    @staticmethod
    def _timeline(conn: Connection, incident_id: int, ts: float, actor: str, kind: str, detail: dict[str, Any]) -> None:
        conn.execute(insert(incident_timeline), [{"incident_id": incident_id, "ts": ts, "actor": actor, "kind": kind, "detail": detail}])


def _services(e: AlertEvent) -> set[str]:
    service = (e.labels or {}).get("service")
    return {service} if service else set()


def rank_origins(alerts: Sequence[dict[str, Any]], topology: dict[str, list[str]]) -> list[dict[str, Any]]:
    """Services of an incident, most likely origin first, each with the reasons that place it.

    Evidence, in order of weight: how many other affected services depend on it (directly or
    through others) in the dependency map, since trouble flows from a dependency to its callers;
    the earliest onset; the strongest deviation (the highest score of its alerts).
    """
    by_service: dict[str, dict[str, Any]] = {}
    for alert in alerts:
        service = alert["labels"].get("service")
        if service is None:
            continue
        entry = by_service.setdefault(service, {"service": service, "onset": alert["first_seen"], "max_score": 0.0})
        entry["onset"] = min(entry["onset"], alert["first_seen"])
        entry["max_score"] = max(entry["max_score"], float(alert["details"].get("score") or 0.0))
    affected = set(by_service)
    for service, entry in by_service.items():
        callers = {c for c in affected if c != service and service in _reachable(topology, c)}
        entry["dependents"] = sorted(callers)
    ranked = sorted(by_service.values(), key=lambda e: (-len(e["dependents"]), e["onset"], -e["max_score"]))
    first_onset = min((e["onset"] for e in ranked), default=0.0)
    strongest = max((e["max_score"] for e in ranked), default=0.0)
    for rank, entry in enumerate(ranked, start=1):
        reasons = []
        if entry["dependents"]:
            reasons.append(f"{', '.join(entry['dependents'])} depend{'s' if len(entry['dependents']) == 1 else ''} on it")
        if entry["onset"] == first_onset:
            reasons.append("its anomalies started first")
        else:
            reasons.append(f"started {entry['onset'] - first_onset:.0f} s after the first")
        if entry["max_score"] == strongest:
            reasons.append(f"strongest deviation (score {strongest:.2f})")
        entry["rank"] = rank
        entry["reasons"] = reasons
    return ranked


def _reachable(topology: dict[str, list[str]], start: str) -> set[str]:
    """Every service `start` calls, directly or through others."""
    seen: set[str] = set()
    stack = list(topology.get(start, []))
    while stack:
        s = stack.pop()
        if s not in seen:
            seen.add(s)
            stack.extend(topology.get(s, []))
    return seen
