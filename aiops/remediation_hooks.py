"""How remediation reaches incidents and people in the service: remediating, resolved, or escalated."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from aiops.executor import IncidentHooks
from aiops.executions import timeline
from aiops.incidents import IncidentManager
from aiops.notifier import Notifier
from remediation.runbook import Runbook

__all__ = ["ServiceHooks"]


class ServiceHooks(IncidentHooks):
    def __init__(self, incidents: IncidentManager, notifier: Notifier) -> None:
        self.incidents = incidents
        self.notifier = notifier

    def started(self, conn: Connection, execution: dict[str, Any], now: float) -> None:
        incident_id = execution.get("incident_id")
        if incident_id is None or execution["dry_run"] or self.incidents.state_of(incident_id) is None:
            return
        self.incidents.remediating(conn, incident_id, now, f"runbook:{execution['runbook']}",
                                   {"execution_id": execution["id"], "target": execution["target"]})

    def healed(self, conn: Connection, execution: dict[str, Any], now: float, reason: str) -> None:
        """Resolve the incident, unless other alerts of it still fire: then it goes back to people."""
        incident_id = execution.get("incident_id")
        if incident_id is None or self.incidents.state_of(incident_id) is None:
            return
        actor = f"runbook:{execution['runbook']}"
        others = [a for a in self.incidents.firing_alerts_of(incident_id) if a != execution.get("alert_id")]
        if others:
            self.incidents.remediation_failed(
                conn, incident_id, now, actor,
                {"execution_id": execution["id"], "healed_alert": execution.get("alert_id"), "still_firing": others},
                kind="remediation_partial",
            )
            return
        self.incidents.resolve(conn, incident_id, now, actor,
                               f"healed by runbook {execution['runbook']} (execution {execution['id']}): {reason}")

    def escalate(self, conn: Connection, execution: dict[str, Any], steps: list[dict[str, Any]], runbook: Runbook | None,
                 now: float) -> None:
        receiver = runbook.escalate.receiver if runbook is not None else None
        told = self.notifier.escalate_execution(conn, execution, steps, receiver, now)
        incident_id = execution.get("incident_id")
        detail = {"execution_id": execution["id"], "state": execution["state"], "reason": execution["reason"][:500],
                  "told": told}
        if incident_id is not None and self.incidents.state_of(incident_id) is not None:
            self.incidents.remediation_failed(conn, incident_id, now, f"runbook:{execution['runbook']}", detail)
        elif incident_id is not None:
            timeline(conn, incident_id, now, f"runbook:{execution['runbook']}", "remediation_escalated", detail)
