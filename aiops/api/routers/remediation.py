"""Remediation: runbooks (list, show, validate, run by hand), executions (list, detail, approve, reject,
cancel) and the kill switch."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete, select, update

from aiops.api.deps import ServiceDep
from aiops.api.filters import parse_cursor
from aiops.config_loader import ConfigError, load_runbook_text
from aiops.executions import FINAL, audit, kill_switch, set_kill_switch, steps_of, timeline
from aiops.store import ListQuery, repository
from aiops.store.schema import alerts, executions, verification_watches

router = APIRouter(prefix="/api/v1", tags=["remediation"])


class Who(BaseModel):
    model_config = ConfigDict(extra="forbid")

    by: str = Field(min_length=1, max_length=128)


class WhoWhy(Who):
    reason: str = Field("", max_length=1024)


class RunRequest(Who):
    alert_id: int = Field(ge=1, description="the alert whose context the runbook gets")
    dry_run: bool = Field(False, description="record what would be done; act on nothing")


class ValidateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    yaml: str = Field(min_length=1, max_length=1_000_000, description="a runbook file: `runbooks: [...]`")


class KillSwitch(Who):
    engaged: bool
    reason: str = Field(min_length=1, max_length=1024)


class ExecutionPublic(BaseModel):
    id: int
    runbook: str
    target: str
    alert_id: int | None
    incident_id: int | None
    state: str
    dry_run: bool
    reason: str
    requested_by: str
    decided_by: str | None
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None


class ExecutionPage(BaseModel):
    items: list[ExecutionPublic]
    next_cursor: str | None


class ExecutionDetail(ExecutionPublic):
    context: dict[str, Any]
    steps: list[dict[str, Any]]
    watches: list[dict[str, Any]] = Field(description="series the execution waits to see normal, as the pipeline last saw them")
    verify_deadline: float | None


# -- runbooks ---------------------------------------------------------------------------------------


@router.get("/runbooks", summary="The configured runbooks")
def list_runbooks(service: ServiceDep) -> dict[str, Any]:
    return {"items": [
        {"name": rb.name, "description": rb.description, "match": rb.match.model_dump(),
         "steps": [s.name for s in rb.steps], "rollback": [s.name for s in rb.rollback],
         "verify": rb.verify is not None, "guards": rb.guards.model_dump(exclude_defaults=True)}
        for rb in service.settings.remediation.runbooks
    ]}


@router.get("/runbooks/{name}", summary="One runbook, as configured")
def get_runbook(name: str, service: ServiceDep) -> dict[str, Any]:
    runbook = service.planner.runbooks.get(name)
    if runbook is None:
        raise HTTPException(404, f"runbook {name!r} not found")
    return runbook.model_dump(by_alias=True)


@router.post("/runbooks/validate", summary="Validate a runbook file without loading it")
def validate_runbooks(body: ValidateRequest) -> dict[str, Any]:
    try:
        found = load_runbook_text(body.yaml, "<request>")
    except ConfigError as exc:
        raise HTTPException(422, [str(i) for i in exc.issues]) from None
    return {"valid": True, "runbooks": [rb.name for rb in found.runbooks]}


@router.post("/runbooks/{name}/run", status_code=201, response_model=ExecutionPublic, summary="Run a runbook by hand")
def run_runbook(name: str, body: RunRequest, service: ServiceDep) -> ExecutionPublic:
    runbook = service.planner.runbooks.get(name)
    if runbook is None:
        raise HTTPException(404, f"runbook {name!r} not found")
    now = service.clock()
    with service.store.begin() as conn:
        alert = conn.execute(select(alerts).where(alerts.c.id == body.alert_id)).first()
        if alert is None:
            raise HTTPException(404, f"alert {body.alert_id} not found")
        execution_id, decision = service.planner.create(conn, runbook, dict(alert._mapping), now, requested_by=body.by,
                                                        force_dry_run=body.dry_run)
        if execution_id is None:
            raise HTTPException(409, f"runbook {name!r} may not run now: {decision.reason}")
        return ExecutionPublic(**_execution(conn, execution_id))


# -- executions -------------------------------------------------------------------------------------


@router.get("/executions", response_model=ExecutionPage, summary="List executions, newest first")
def list_executions(
    service: ServiceDep,
    state: Annotated[Literal["pending", "awaiting_approval", "running", "verifying", "rolling_back", "succeeded",
                             "rolled_back", "escalated", "failed", "cancelled"] | None, Query()] = None,
    runbook: Annotated[str | None, Query(max_length=128)] = None,
    incident_id: Annotated[int | None, Query(ge=1)] = None,
    cursor: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> ExecutionPage:
    c = executions.c
    filters = [*([c.state == state] if state else []), *([c.runbook == runbook] if runbook else []),
               *([c.incident_id == incident_id] if incident_id else [])]
    with service.store.begin() as conn:
        found = repository.page(conn, select(executions).where(*filters), c.id,
                                ListQuery(cursor=parse_cursor(cursor), limit=limit))
    return ExecutionPage(items=found.items, next_cursor=found.next_cursor)


@router.get("/executions/{execution_id}", response_model=ExecutionDetail, summary="An execution with every step")
def get_execution(execution_id: int, service: ServiceDep) -> ExecutionDetail:
    with service.store.begin() as conn:
        row = _execution(conn, execution_id)
        watches = [dict(r._mapping) for r in conn.execute(
            select(verification_watches).where(verification_watches.c.execution_id == execution_id))]
        return ExecutionDetail(**row, steps=steps_of(conn, execution_id), watches=watches)


@router.post("/executions/{execution_id}/approve", response_model=ExecutionPublic, summary="Approve")
def approve(execution_id: int, body: Who, service: ServiceDep) -> ExecutionPublic:
    now = service.clock()
    with service.store.begin() as conn:
        row = _awaiting(conn, execution_id)
        runbook = service.planner.runbooks.get(row["runbook"])
        approvers = runbook.guards.approval.approvers if runbook is not None and runbook.guards.approval else []
        if approvers and body.by not in approvers:
            raise HTTPException(403, f"{body.by} may not approve runbook {row['runbook']} (approvers: {', '.join(approvers)})")
        _transition(conn, row, now, body.by, "pending", f"approved by {body.by}", "remediation.approved")
        return ExecutionPublic(**_execution(conn, execution_id))


@router.post("/executions/{execution_id}/reject", response_model=ExecutionPublic, summary="Reject")
def reject(execution_id: int, body: WhoWhy, service: ServiceDep) -> ExecutionPublic:
    now = service.clock()
    with service.store.begin() as conn:
        row = _awaiting(conn, execution_id)
        reason = f"rejected by {body.by}" + (f": {body.reason}" if body.reason else "")
        _transition(conn, row, now, body.by, "cancelled", reason, "remediation.rejected", finished=True)
        return ExecutionPublic(**_execution(conn, execution_id))


@router.post("/executions/{execution_id}/cancel", response_model=ExecutionPublic, summary="Cancel")
def cancel(execution_id: int, body: WhoWhy, service: ServiceDep) -> ExecutionPublic:
    """Stops before its next step (a step already running finishes first); nothing is rolled back."""
    now = service.clock()
    with service.store.begin() as conn:
        row = _execution(conn, execution_id)
        if row["state"] in FINAL:
            raise HTTPException(409, f"execution {execution_id} has already ended ({row['state']})")
        reason = f"cancelled by {body.by}" + (f": {body.reason}" if body.reason else "")
        _transition(conn, row, now, body.by, "cancelled", reason, "remediation.cancelled", finished=True)
        conn.execute(delete(verification_watches).where(verification_watches.c.execution_id == execution_id))
        return ExecutionPublic(**_execution(conn, execution_id))


# -- kill switch ------------------------------------------------------------------------------------


@router.get("/remediation/kill-switch", summary="Whether remediation may act")
def get_kill_switch(service: ServiceDep) -> dict[str, Any]:
    with service.store.begin() as conn:
        why = kill_switch(conn, service.settings.remediation)
    return {"engaged": why is not None, "reason": why}


@router.put("/remediation/kill-switch", summary="Stop (or allow again) every runbook from acting")
def put_kill_switch(body: KillSwitch, service: ServiceDep) -> dict[str, Any]:
    with service.store.begin() as conn:
        set_kill_switch(conn, body.engaged, body.reason, body.by, service.clock())
        why = kill_switch(conn, service.settings.remediation)
    return {"engaged": why is not None, "reason": why}


def _execution(conn, execution_id: int) -> dict[str, Any]:
    found = conn.execute(select(executions).where(executions.c.id == execution_id)).first()
    if found is None:
        raise HTTPException(404, f"execution {execution_id} not found")
    return dict(found._mapping)


def _awaiting(conn, execution_id: int) -> dict[str, Any]:
    row = _execution(conn, execution_id)
    if row["state"] != "awaiting_approval":
        raise HTTPException(409, f"execution {execution_id} is {row['state']}, not awaiting approval")
    return row


def _transition(conn, row, now: float, by: str, state: str, reason: str, action: str, finished: bool = False) -> None:
    values = {"state": state, "reason": reason, "decided_by": by, "updated_at": now, "wake_at": None}
    if finished:
        values["finished_at"] = now
    conn.execute(update(executions).where(executions.c.id == row["id"]).values(**values))
    audit(conn, now, by, action, row["id"], {"reason": reason})
    timeline(conn, row["incident_id"], now, by, action.replace("remediation.", "remediation_"),
             {"execution_id": row["id"], "reason": reason})
