"""The notifier: turns alert and incident changes into explained notifications in the outbox.

Three sources feed it, all inside the transaction that made the change:
- routed alert groups (`alerting.route`): the dispatcher decides when a group speaks (group_wait,
  group_interval, repeat_interval, resolved);
- escalation pages of unacknowledged incidents (`alerting.escalation`);
- acknowledgement, remediation and resolution of an incident, told to every receiver it paged
  (PagerDuty acknowledges or resolves the same dedup key).
Delivery itself happens in the outbox's thread, never in the pipeline's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, select

from aiops import incident_story
from aiops.alerts import AlertEvent
from aiops.explain import execution_payload, group_payload, incident_payload
from aiops.incidents import IncidentManager
from aiops.outbox import Outbox
from aiops.routing import Dispatcher, Notification, RoutingTree
from aiops.settings import Route, Settings
from aiops.store.schema import alerts, incident_alerts, notifications

__all__ = ["Notifier"]

_INCIDENT_ACTION = {"acknowledged": "acknowledge", "resolved": "resolve", "remediating": "acknowledge"}  # PagerDuty has no remediating


class Notifier:
    def __init__(self, settings: Settings, incidents: IncidentManager, outbox: Outbox) -> None:
        self.incidents = incidents
        self.outbox = outbox
        self._route: Route | None = None
        self.dispatcher: Dispatcher | None = None
        self.configure(settings)
        incidents.listeners.append(self._incident_changed)

    def configure(self, settings: Settings) -> None:
        """Apply (re)loaded settings; open groups of an unchanged tree keep their timing."""
        alerting = settings.alerting
        self.public_url = settings.server.public_url
        self.lookback_s = alerting.incidents.change_lookback_s
        route = alerting.route
        if route != self._route:
            self.dispatcher = None if route is None else Dispatcher(RoutingTree(route))
        self._route = route

    @property
    def active(self) -> bool:
        """Whether anything can be due: a routing tree or an escalation policy."""
        return self.dispatcher is not None or bool(self.incidents.escalations)

    def seed(self, firing: Sequence[dict[str, Any]], now: float) -> None:
        """At start, put the firing alerts back into their groups (their messages are already on record)."""
        if self.dispatcher is None:
            return
        for alert in firing:
            self.dispatcher.observe(AlertEvent.of("opened", alert), now)

    def observe(self, events: Sequence[AlertEvent], now: float) -> None:
        if self.dispatcher is not None:
            for e in events:
                self.dispatcher.observe(e, now)

    def tick(self, conn: Connection, now: float) -> int:
        """Write what is due now (routed groups, escalation pages) to the outbox; returns rows written."""
        written = 0
        if self.dispatcher is not None:
            for n in self.dispatcher.due(now):
                written += self._group(conn, n, now)
        for page in self.incidents.due_pages(conn, now):
            story = self._story(conn, page.incident_id)
            if story is None:
                continue
            payload = incident_payload(receiver=page.receiver, story=story, reason="escalation",
                                       public_url=self.public_url, step=page.step)
            written += self.outbox.enqueue(
                conn, receiver=page.receiver, action="trigger", reason="escalation", subject=f"incident:{page.incident_id}",
                payload=payload, key=(page.step, page.round), now=now, incident_id=page.incident_id,
            )
        return written

    def _group(self, conn: Connection, n: Notification, now: float) -> int:
        ids = [e.alert_id for e in n.firing] + [e.alert_id for e in n.resolved]
        rows = {r.id: dict(r._mapping) for r in conn.execute(select(alerts).where(alerts.c.id.in_(ids)))}
        firing = [rows[e.alert_id] for e in n.firing if e.alert_id in rows]
        resolved = [rows[e.alert_id] for e in n.resolved if e.alert_id in rows]
        incident_ids = sorted({r.incident_id for r in conn.execute(
            select(incident_alerts.c.incident_id).where(incident_alerts.c.alert_id.in_(ids)))})
        stories = [s for s in (self._story(conn, i) for i in incident_ids[-3:]) if s is not None]
        payload = group_payload(receiver=n.receiver, route=n.route, group=n.group, reason=n.reason, firing=firing,
                                resolved=resolved, stories=stories, public_url=self.public_url)
        group_id = hashlib.sha256(f"{n.route}\x1f{sorted(n.group.items())}".encode()).hexdigest()[:24]
        # Key: the same group telling the same alerts for the same reason is the same message (a restart
        # does not page twice); a repeat is new news once per repeat interval.
        key: tuple[Any, ...] = (n.reason, tuple(sorted(e.alert_id for e in n.firing)),
                                tuple(sorted(e.alert_id for e in n.resolved)))
        if n.reason == "repeat":
            key += (now,)
        return self.outbox.enqueue(
            conn, receiver=n.receiver, action="trigger" if firing else "resolve", reason=n.reason,
            subject=f"group:{group_id}", payload=payload, key=key, now=now,
        )

    def escalate_execution(self, conn: Connection, execution: dict[str, Any], steps: list[dict[str, Any]],
                           receiver: str | None, now: float) -> str | None:
        """Tell a person that a runbook could not heal; returns the receiver told (None: none configured)."""
        receiver = receiver or (self._route.receiver if self._route is not None else None)
        if receiver is None:
            return None
        story = self._story(conn, execution["incident_id"]) if execution.get("incident_id") else None
        payload = execution_payload(receiver=receiver, execution=execution, steps=steps, story=story,
                                    public_url=self.public_url)
        self.outbox.enqueue(conn, receiver=receiver, action="trigger", reason=f"remediation_{execution['state']}",
                            subject=f"execution:{execution['id']}", payload=payload, key=(execution["state"],), now=now,
                            incident_id=execution.get("incident_id"))
        return receiver

    def _incident_changed(self, conn: Connection, incident_id: int, change: str, actor: str, now: float) -> None:
        paged = sorted({r.receiver for r in conn.execute(
            select(notifications.c.receiver).where(
                notifications.c.incident_id == incident_id, notifications.c.action == "trigger"))})
        if not paged:
            return
        story = self._story(conn, incident_id)
        if story is None:
            return
        action = _INCIDENT_ACTION[change]
        for receiver in paged:
            payload = incident_payload(receiver=receiver, story=story, reason=change, public_url=self.public_url, actor=actor)
            self.outbox.enqueue(
                conn, receiver=receiver, action=action, reason=change, subject=f"incident:{incident_id}",
                payload=payload, key=(now,), now=now, incident_id=incident_id,
            )

    def _story(self, conn: Connection, incident_id: int) -> dict[str, Any] | None:
        return incident_story.story(conn, incident_id, self.incidents.topology(), self.lookback_s)
