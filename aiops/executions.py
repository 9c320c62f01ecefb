"""Executions in the store: planned from alerts (runbook matched, guards applied), decided, listed.

When an alert opens, the first runbook whose `match` fits it is planned: its target and params are
rendered from the alert, the guards decide (`remediation.guards`), and the outcome is recorded
whatever it is: an execution `pending` or `awaiting_approval`, or, when a guard says no, an audit
entry and an incident timeline note saying which guard and why. The executor (`aiops.executor`)
takes it from there.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from aiops.alerts import AlertEvent
from aiops.matchers import Selector, parse_selector
from aiops.settings import RemediationSettings
from aiops.store import repository
from aiops.store.schema import alerts, execution_steps, executions, incident_alerts, incident_timeline, switches
from remediation.guards import Decision, History, decide
from remediation.runbook import Runbook
from remediation.templating import TemplateRenderError, render_text

__all__ = ["ACTIVE", "FINAL", "KILL_SWITCH", "Planner", "alert_context", "audit", "kill_switch", "set_kill_switch"]

log = logging.getLogger(__name__)

FINAL = ("succeeded", "rolled_back", "escalated", "failed", "cancelled")
ACTIVE = ("pending", "awaiting_approval", "running", "verifying", "rolling_back")
KILL_SWITCH = "remediation"
_RANK = {"warning": 1, "critical": 2}


def audit(conn: Connection, now: float, actor: str, action: str, execution_id: int | None, detail: dict[str, Any]) -> None:
    subject = f"execution:{execution_id}" if execution_id is not None else "remediation"
    repository.append_audit(conn, [{"ts": now, "actor": actor, "action": action, "subject": subject, "detail": detail}])


def timeline(conn: Connection, incident_id: int | None, now: float, actor: str, kind: str, detail: dict[str, Any]) -> None:
    if incident_id is not None:
        conn.execute(insert(incident_timeline), [{"incident_id": incident_id, "ts": now, "actor": actor, "kind": kind,
                                                  "detail": detail}])


def kill_switch(conn: Connection, settings: RemediationSettings) -> str | None:
    """Why remediation is off, if it is: the config's `enabled: false`, or the switch set through the API."""
    if not settings.enabled:
        return "remediation.enabled is false in the settings"
    row = conn.execute(select(switches).where(switches.c.name == KILL_SWITCH)).first()
    if row is not None and row.engaged:
        return f"{row.changed_by}: {row.reason}"
    return None


def set_kill_switch(conn: Connection, engaged: bool, reason: str, by: str, now: float) -> None:
    values = {"engaged": engaged, "reason": reason, "changed_by": by, "changed_at": now}
    if conn.execute(update(switches).where(switches.c.name == KILL_SWITCH).values(**values)).rowcount == 0:
        conn.execute(insert(switches), [{"name": KILL_SWITCH, **values}])
    audit(conn, now, by, "remediation.kill_switch." + ("engaged" if engaged else "released"), None, {"reason": reason})


def alert_context(alert: dict[str, Any], incident_id: int | None) -> dict[str, Any]:
    """What templates see of an alert: `labels`, `name`, `value`, `expected`, `lower`, `upper`, `score`…"""
    labels = dict(alert["labels"])
    name = labels.pop("__name__", "")
    details = alert.get("details") or {}
    return {
        "alert_id": alert["id"], "incident_id": incident_id, "series_id": alert.get("series_id"),
        "name": name, "labels": labels, "kind": alert.get("kind", "anomaly"), "severity": alert["severity"],
        "value": details.get("value"), "expected": details.get("expected"), "lower": details.get("lower"),
        "upper": details.get("upper"), "score": details.get("score"), "first_seen": alert["first_seen"],
        "summary": alert["summary"],
    }


class Planner:
    def __init__(self, settings: RemediationSettings) -> None:
        self.configure(settings)

    def configure(self, settings: RemediationSettings) -> None:
        self.settings = settings
        self.runbooks: dict[str, Runbook] = {rb.name: rb for rb in settings.runbooks}
        self._selectors: list[tuple[Runbook, Selector]] = [(rb, parse_selector(rb.match.selector)) for rb in settings.runbooks]

    def runbook_for(self, alert: dict[str, Any]) -> Runbook | None:
        """The first runbook whose match fits the alert (kind, selector over its labels, lowest severity)."""
        for rb, selector in self._selectors:
            m = rb.match
            if m.kind not in ("any", alert.get("kind", "anomaly")):
                continue
            if _RANK[alert["severity"]] < _RANK[m.severity] or not selector.matches_labels(alert["labels"]):
                continue
            return rb
        return None

    def plan(self, conn: Connection, events: Sequence[AlertEvent], now: float) -> list[int]:
        """Plan executions for newly opened, unmuted alerts; returns the ids created."""
        opened = [e.alert_id for e in events if e.event == "opened" and e.silenced_by is None]
        if not opened or not self._selectors:
            return []
        created = []
        for row in conn.execute(select(alerts).where(alerts.c.id.in_(opened)).order_by(alerts.c.id)):
            alert = dict(row._mapping)
            runbook = self.runbook_for(alert)
            if runbook is None:
                continue
            execution_id, _ = self.create(conn, runbook, alert, now, requested_by="pipeline")
            if execution_id is not None:
                created.append(execution_id)
        return created

    def create(
        self, conn: Connection, runbook: Runbook, alert: dict[str, Any], now: float, requested_by: str,
        force_dry_run: bool = False,
    ) -> tuple[int | None, Decision]:
        """Decide and record; returns the execution's id (None when a guard said no) and the decision."""
        incident_id = conn.execute(
            select(func.max(incident_alerts.c.incident_id)).where(incident_alerts.c.alert_id == alert["id"])
        ).scalar()
        context = {**alert_context(alert, incident_id), "vars": self.settings.vars}
        try:
            target = render_text(runbook.target, context, f"runbook {runbook.name}: target")
            context["params"] = {k: render_text(v, context, f"runbook {runbook.name}: params.{k}")
                                 for k, v in runbook.params.items()}
        except TemplateRenderError as exc:
            decision = Decision("failed", f"template error: {exc}")
            target = "?"
        else:
            decision = decide(runbook, self._history(conn, runbook.name, target, now), now, force_dry_run)
        detail = {"runbook": runbook.name, "target": target, "alert_id": alert["id"], "reason": decision.reason}
        if decision.state is None:
            audit(conn, now, requested_by, "remediation.skipped", None, detail)
            timeline(conn, incident_id, now, f"runbook:{runbook.name}", "remediation_skipped", detail)
            log.info("runbook %s not run on %s: %s", runbook.name, target, decision.reason)
            return None, decision
        context["band"] = {"expected": context["expected"], "lower": context["lower"], "upper": context["upper"]}
        row = {
            "runbook": runbook.name, "target": target, "alert_id": alert["id"], "incident_id": incident_id,
            "series_id": alert.get("series_id"), "state": decision.state, "dry_run": decision.dry_run,
            "context": context, "requested_by": requested_by, "decided_by": None, "reason": decision.reason,
            "created_at": now, "updated_at": now, "started_at": None,
            "finished_at": now if decision.state == "failed" else None, "verify_deadline": None, "wake_at": None,
            "lease_owner": None, "lease_expires_at": None,
        }
        execution_id = int(conn.execute(insert(executions).returning(executions.c.id), [row]).scalar_one())
        audit(conn, now, requested_by, f"remediation.{decision.state}", execution_id, detail)
        timeline(conn, incident_id, now, f"runbook:{runbook.name}", "remediation_planned",
                 {**detail, "execution_id": execution_id, "state": decision.state, "dry_run": decision.dry_run})
        return execution_id, decision

    def _history(self, conn: Connection, runbook: str, target: str, now: float) -> History:
        e = executions.c
        hour = now - 3600
        count = lambda *where: conn.execute(select(func.count()).select_from(executions).where(*where)).scalar_one()  # noqa: E731
        active = count(e.target == target, e.state.in_(ACTIVE)) > 0
        last_finished = conn.execute(select(func.max(e.finished_at)).where(e.target == target)).scalar()
        return History(
            runbook_last_hour=count(e.runbook == runbook, e.created_at >= hour, e.state != "failed"),
            target_last_hour=count(e.runbook == runbook, e.target == target, e.created_at >= hour, e.state != "failed"),
            target_active=active,
            target_last_finished_at=last_finished,
            kill_switch=kill_switch(conn, self.settings),
        )


def steps_of(conn: Connection, execution_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(select(execution_steps).where(execution_steps.c.execution_id == execution_id)
                        .order_by(execution_steps.c.id))
    return [dict(r._mapping) for r in rows]
