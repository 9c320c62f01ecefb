"""The closed-loop executor: act, verify, roll back or escalate — durably, exactly once.

Each execution is a state machine kept in the store:

    pending ─► running ─► verifying ─► succeeded
       ▲          │            │
 awaiting_        │ a step     │ not normal by the deadline
 approval         │ failed     ▼
                  └──────► rolling_back ─► rolled_back (verification failed) | failed (a step failed)
    (any) ─► escalated (a step may or may not have run and is not idempotent) | cancelled

Claiming: a worker takes a due execution with a conditional update of its lease (after `SELECT …
FOR UPDATE SKIP LOCKED` on PostgreSQL), so among any number of executor processes sharing a store
one advances it; a heartbeat extends the lease while it works, and an execution whose executor died
is taken over once its lease runs out. An execution that must wait (a `wait` step, a `check`,
verification) records when it is due (`wake_at`) and lets go of its lease.

Durability: a step's row is written (`running`) before its action runs and again when it returns.
A resumed execution that finds a step still `running` cannot know whether it ran: a `wait` or
`check` simply goes on, a Jenkins build whose queue item was recorded is followed, an idempotent
step runs again with the same idempotency key, and anything else escalates rather than risk acting
twice.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, insert, or_, select, update

from aiops.executions import audit, kill_switch, steps_of, timeline
from aiops.settings import Settings
from aiops.store import StoreEngine
from aiops.store.schema import execution_steps, executions, verification_watches
from connectors.jenkins import JenkinsAction
from remediation.actions import ActionError, HttpCall, StepRun
from remediation.runbook import Runbook, Step
from remediation.templating import TemplateRenderError, render_tree

__all__ = ["Executor", "IncidentHooks"]

log = logging.getLogger(__name__)

_WORKING = ("pending", "running", "verifying", "rolling_back")


@dataclass(frozen=True)
class _Done:
    outputs: dict[str, Any]
    state: str = "succeeded"


@dataclass(frozen=True)
class _Wait:
    until: float


@dataclass(frozen=True)
class _Failed:
    error: str


@dataclass(frozen=True)
class _Uncertain:
    error: str


class IncidentHooks:
    """What remediation tells the incident and the people: started, healed, or needing a human."""

    def started(self, conn: Connection, execution: dict[str, Any], now: float) -> None: ...

    def healed(self, conn: Connection, execution: dict[str, Any], now: float, reason: str) -> None: ...

    def escalate(self, conn: Connection, execution: dict[str, Any], steps: list[dict[str, Any]], runbook: Runbook | None,
                 now: float) -> None: ...


class Executor:
    def __init__(
        self,
        store: StoreEngine,
        settings: Settings,
        hooks: IncidentHooks | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        http: HttpCall | None = None,
        jenkins: Callable[[str | None], Any] | None = None,
        owner: str | None = None,
    ) -> None:
        self.store = store
        self.hooks = hooks or IncidentHooks()
        self.clock = clock
        self.sleep = sleep
        self.http = http or HttpCall(clock=clock, sleep=sleep)
        self.jenkins = jenkins
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.configure(settings)
        self._held: set[int] = set()  # executions this process is advancing (their leases are heartbeaten)
        self._held_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def configure(self, settings: Settings) -> None:
        self.settings = settings.remediation
        self.runbooks = {rb.name: rb for rb in settings.remediation.runbooks}

    # -- threads ------------------------------------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        self._threads = [threading.Thread(target=self._work, name=f"aiops-executor-{i}", daemon=True)
                         for i in range(self.settings.workers)]
        self._threads.append(threading.Thread(target=self._heartbeat, name="aiops-executor-heartbeat", daemon=True))
        for t in self._threads:
            t.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout)
        self._threads = []

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                if not self.run_once():
                    self._stop.wait(self.settings.poll_s)
            except Exception:  # keep the worker alive; the execution keeps its state and is retried
                log.exception("executor pass failed")
                self._stop.wait(self.settings.poll_s)

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.settings.lease_s / 3):
            with self._held_lock:
                held = list(self._held)
            if held:
                try:
                    with self.store.begin() as conn:
                        conn.execute(update(executions).where(executions.c.id.in_(held), executions.c.lease_owner == self.owner)
                                     .values(lease_expires_at=self.clock() + self.settings.lease_s))
                except Exception:
                    log.exception("lease heartbeat failed")

    # -- claiming -----------------------------------------------------------------------------------

    def run_once(self) -> bool:
        """Claim one due execution and advance it as far as it goes; False when nothing was due."""
        execution_id = self.claim()
        if execution_id is None:
            return False
        with self._held_lock:
            self._held.add(execution_id)
        try:
            self.advance(execution_id)
        finally:
            with self._held_lock:
                self._held.discard(execution_id)
            self._release(execution_id)
        return True

    def claim(self) -> int | None:
        now = self.clock()
        e = executions.c
        with self.store.begin() as conn:
            due = [
                e.state.in_(_WORKING),
                or_(e.wake_at.is_(None), e.wake_at <= now),
                or_(e.lease_expires_at.is_(None), e.lease_expires_at < now),
            ]
            if kill_switch(conn, self.settings) is not None:
                due.append(e.dry_run.is_(True))  # the kill switch holds everything that would act
            stmt = select(e.id).where(*due).order_by(e.id).limit(1)
            if conn.dialect.name == "postgresql":
                stmt = stmt.with_for_update(skip_locked=True)
            found = conn.execute(stmt).scalar()
            if found is None:
                return None
            taken = conn.execute(
                update(executions)
                .where(e.id == found, or_(e.lease_expires_at.is_(None), e.lease_expires_at < now))
                .values(lease_owner=self.owner, lease_expires_at=now + self.settings.lease_s)
            ).rowcount
        return found if taken == 1 else None

    def _release(self, execution_id: int) -> None:
        with self.store.begin() as conn:
            conn.execute(update(executions).where(executions.c.id == execution_id, executions.c.lease_owner == self.owner)
                         .values(lease_owner=None, lease_expires_at=None))

    # -- the state machine --------------------------------------------------------------------------

    def advance(self, execution_id: int) -> None:
        """Move a claimed execution on until it finishes or has to wait."""
        while not self._stop.is_set():
            with self.store.begin() as conn:
                ex = self._row(conn, execution_id)
                halted = ex is not None and not ex["dry_run"] and kill_switch(conn, self.settings) is not None
            if ex is None or ex["lease_owner"] != self.owner or ex["state"] not in _WORKING or halted:
                return  # (the kill switch stops it before its next step; it waits where it stands)
            runbook = self.runbooks.get(ex["runbook"])
            now = self.clock()
            if runbook is None:
                self._finish(ex, "escalated", f"runbook {ex['runbook']!r} is no longer configured", None)
                return
            if ex["state"] == "pending":
                with self.store.begin() as conn:
                    self._set(conn, ex, state="running", started_at=now, reason="running")
                    audit(conn, now, self.owner, "remediation.started", ex["id"], {"runbook": runbook.name, "target": ex["target"]})
                    self.hooks.started(conn, {**ex, "state": "running"}, now)
                continue
            if ex["state"] == "verifying":
                outcome = self._verifying(ex, runbook, now)
            else:
                outcome = self._next_step(ex, runbook)
            if isinstance(outcome, _Wait):
                with self.store.begin() as conn:
                    self._set(conn, ex, wake_at=outcome.until)
                return
            if outcome is None:  # moved on: look again
                continue
            return

    def _next_step(self, ex: dict[str, Any], runbook: Runbook) -> _Wait | None | bool:
        phase = "steps" if ex["state"] == "running" else "rollback"
        steps = runbook.steps if phase == "steps" else runbook.rollback
        with self.store.begin() as conn:
            rows = [r for r in steps_of(conn, ex["id"]) if r["phase"] == phase]
        latest = {r["idx"]: r for r in rows}  # rows come in id order: the last attempt wins
        idx = next((i for i in range(len(steps)) if latest.get(i, {}).get("state") not in ("succeeded", "dry_run")), len(steps))
        if idx == len(steps):
            return self._phase_done(ex, runbook, phase)
        step, row = steps[idx], latest.get(idx)
        if row is None:
            outcome, row = self._start_step(ex, runbook, phase, idx, step)
        elif row["state"] == "running":
            outcome = self._resume(ex, step, row)
        else:  # failed: the failure was recorded but the transition was not
            outcome = _Failed(row["error"] or "failed")
        return self._settle(ex, runbook, phase, step, row, outcome)

    def _start_step(self, ex, runbook: Runbook, phase: str, idx: int, step: Step):
        now = self.clock()
        context = {**ex["context"], "execution_id": ex["id"], "target": ex["target"], "vars": self.settings.vars}
        key = f"aiops-exec-{ex['id']}-{phase}-{idx}"
        try:
            args = render_tree(step.with_, context, f"runbook {runbook.name}: {phase}[{idx}] ({step.name}).with")
            error = None
        except TemplateRenderError as exc:
            args, error = {}, str(exc)
        row = {
            "execution_id": ex["id"], "phase": phase, "idx": idx, "name": step.name, "action": step.action,
            "state": "running", "attempts": 1, "inputs": args, "outputs": {}, "error": None, "idempotency_key": key,
            "started_at": now, "finished_at": None,
        }
        with self.store.begin() as conn:  # on record before anything is done
            row["id"] = int(conn.execute(insert(execution_steps).returning(execution_steps.c.id), [row]).scalar_one())
        if error is not None:
            return _Failed(error), row
        if ex["dry_run"]:
            return _Done({"dry_run": True, "would": {"action": step.action, "with": args}}, state="dry_run"), row
        return self._act(ex, step, row, fresh=True), row

    def _resume(self, ex: dict[str, Any], step: Step, row: dict[str, Any]):
        """A step found `running`: its executor stopped while it ran, or it is a wait or check that is due."""
        if step.action in ("wait", "check"):
            return self._act(ex, step, row, fresh=False)
        if step.action == "jenkins" and row["outputs"].get("queue_url"):
            return self._act(ex, step, row, fresh=False)
        if step.is_idempotent:
            with self.store.begin() as conn:
                conn.execute(update(execution_steps).where(execution_steps.c.id == row["id"])
                             .values(attempts=row["attempts"] + 1))
            return self._act(ex, step, row, fresh=True)
        return _Uncertain(f"step {step.name!r} ({step.action}) may or may not have run before the executor stopped, "
                          "and it is not idempotent: a person must check")

    def _act(self, ex: dict[str, Any], step: Step, row: dict[str, Any], fresh: bool):
        args = row["inputs"]
        now = self.clock()
        run = StepRun(row["idempotency_key"], step.timeout_s, step.retry.max_attempts, step.retry.backoff_s)
        try:
            if step.action == "http":
                return _Done(self.http.run(args, run))
            if step.action == "wait":
                until = row["outputs"].get("until") or now + float(args["seconds"])
                if fresh:
                    self._progress(row, {"until": until})
                return _Done({"waited_s": float(args["seconds"])}) if now >= until else _Wait(until)
            if step.action == "check":
                return self._check(ex, step, row, args, fresh, now)
            if step.action == "jenkins":
                return self._jenkins(step, row, args, run, fresh)
        except ActionError as exc:
            return _Failed(str(exc))
        except Exception as exc:  # an action's unexpected error is a failed step, not a stuck execution
            log.exception("step %s of execution %s raised", step.name, ex["id"])
            return _Failed(f"{type(exc).__name__}: {exc}")
        return _Failed(f"unknown action {step.action}")

    def _jenkins(self, step: Step, row: dict[str, Any], args: dict[str, Any], run: StepRun, fresh: bool):
        action = self._jenkins_action(args.get("server"))
        queue_url = row["outputs"].get("queue_url")
        if queue_url is None:
            queued = action.trigger(str(args["job"]), {k: str(v) for k, v in (args.get("params") or {}).items()},
                                    run.idempotency_key)
            queue_url = queued.queue_url
            self._progress(row, {"queue_url": queue_url})  # from here a resumed step follows, never triggers again
        result = action.follow(queue_url)
        outputs = {"queue_url": queue_url, "build_url": result.build.url, "number": result.build.number,
                   "result": result.outcome, "duration_s": result.duration_s}
        return _Done(outputs) if result.success else _Failed(f"Jenkins build {result.build.url} ended {result.outcome}")

    def _jenkins_action(self, server: str | None):
        if self.jenkins is not None:  # tests hand in their own
            return self.jenkins(server)
        servers = self.settings.jenkins
        name = server if server is not None else next(iter(servers))
        return JenkinsAction(servers[name], clock=self.clock, sleep=self.sleep)

    def _check(self, ex, step: Step, row, args, fresh: bool, now: float):
        """`check`: one point of the alert's series, after the step began, must be normal; else fail at timeout."""
        band = ex["context"].get("band") or {}
        if fresh:
            self._watch(ex, float(args.get("max_score", 0.5)), band if args.get("inside_band", True) else {},
                        purpose=f"check:{step.name}")
        watch = self._watched(ex["id"], f"check:{step.name}")
        if watch is not None and watch.normal_since is not None:
            self._unwatch(ex["id"], f"check:{step.name}")
            return _Done({"value": watch.last_value, "score": watch.last_score})
        if now - row["started_at"] >= step.timeout_s:
            self._unwatch(ex["id"], f"check:{step.name}")
            seen = f"last value {watch.last_value}, score {watch.last_score}" if watch is not None and watch.last_ts else "no new point"
            return _Failed(f"check {step.name!r}: the series was not normal within {step.timeout_s:g} s ({seen})")
        return _Wait(now + self.settings.poll_s)

    def _settle(self, ex, runbook: Runbook, phase: str, step: Step, row, outcome) -> _Wait | None | bool:
        now = self.clock()
        if isinstance(outcome, _Wait):
            return outcome
        with self.store.begin() as conn:
            if isinstance(outcome, _Done):
                conn.execute(update(execution_steps).where(execution_steps.c.id == row["id"]).values(
                    state=outcome.state, outputs={**row["outputs"], **outcome.outputs}, finished_at=now))
                audit(conn, now, self.owner, f"remediation.step.{outcome.state}", ex["id"],
                      {"phase": phase, "step": step.name, "action": step.action})
                return None
            conn.execute(update(execution_steps).where(execution_steps.c.id == row["id"]).values(
                state="failed", error=outcome.error[:2048], finished_at=now))
            audit(conn, now, self.owner, "remediation.step.failed", ex["id"], {"phase": phase, "step": step.name,
                                                                               "error": outcome.error})
        if isinstance(outcome, _Uncertain):
            self._finish(ex, "escalated", outcome.error, runbook)
            return False
        if phase == "steps":
            with self.store.begin() as conn:
                self._set(conn, ex, state="rolling_back", reason=f"step {step.name!r} failed: {outcome.error}"[:1024])
            return None
        self._finish(ex, "failed", f"{ex['reason']}; then rollback step {step.name!r} failed: {outcome.error}", runbook)
        return False

    def _phase_done(self, ex, runbook: Runbook, phase: str) -> _Wait | None | bool:
        now = self.clock()
        if phase == "rollback":
            verify_failed = ex["reason"].startswith("not verified")
            self._finish(ex, "rolled_back" if verify_failed else "failed",
                         f"{ex['reason']}; rolled back" if runbook.rollback else ex["reason"], runbook)
            return False
        if ex["dry_run"]:
            self._finish(ex, "succeeded", "dry run: every step recorded, nothing done, nothing verified", runbook)
            return False
        if runbook.verify is None:
            self._finish(ex, "succeeded", "steps done; the runbook asks for no verification", runbook)
            return False
        v = runbook.verify
        self._watch(ex, v.max_score, (ex["context"].get("band") or {}) if v.inside_band else {}, purpose="verify")
        with self.store.begin() as conn:
            self._set(conn, ex, state="verifying", verify_deadline=now + v.deadline_s, reason="verifying")
            audit(conn, now, self.owner, "remediation.verifying", ex["id"], {"for_s": v.for_s, "deadline_s": v.deadline_s})
        return None

    def _verifying(self, ex, runbook: Runbook, now: float) -> _Wait | None | bool:
        v = runbook.verify
        watch = self._watched(ex["id"], "verify")
        if v is None or (watch is not None and watch.normal_since is not None and watch.last_ts - watch.normal_since >= v.for_s):
            self._unwatch(ex["id"], "verify")
            how = (f"verified: normal for {watch.last_ts - watch.normal_since:.0f} s (last value {watch.last_value:.4g}, "
                   f"score {watch.last_score:.3f})") if watch is not None else "verified"
            self._finish(ex, "succeeded", how, runbook)
            return False
        if now >= ex["verify_deadline"]:
            self._unwatch(ex["id"], "verify")
            seen = (f"last value {watch.last_value:.4g}, score {watch.last_score:.3f}"
                    if watch is not None and watch.last_ts is not None else "no point seen")
            with self.store.begin() as conn:
                reason = f"not verified within {v.deadline_s:g} s ({seen})"
                self._set(conn, ex, state="rolling_back", reason=reason)
                audit(conn, now, self.owner, "remediation.not_verified", ex["id"], {"reason": reason})
            return None
        return _Wait(min(ex["verify_deadline"], now + self.settings.poll_s))

    # -- helpers ------------------------------------------------------------------------------------

    def _finish(self, ex: dict[str, Any], state: str, reason: str, runbook: Runbook | None) -> None:
        now = self.clock()
        with self.store.begin() as conn:
            self._set(conn, ex, state=state, reason=reason[:1024], finished_at=now, wake_at=None)
            audit(conn, now, self.owner, f"remediation.{state}", ex["id"], {"reason": reason})
            done = {**ex, "state": state, "reason": reason}
            if state == "succeeded" and not ex["dry_run"]:
                self.hooks.healed(conn, done, now, reason)
            elif state in ("rolled_back", "failed", "escalated"):
                self.hooks.escalate(conn, done, steps_of(conn, ex["id"]), runbook, now)
            timeline(conn, ex["incident_id"], now, f"runbook:{ex['runbook']}", f"remediation_{state}",
                     {"execution_id": ex["id"], "reason": reason[:500]})
        log.info("execution %s (%s on %s): %s: %s", ex["id"], ex["runbook"], ex["target"], state, reason)

    def _set(self, conn: Connection, ex: dict[str, Any], **values: Any) -> None:
        values["updated_at"] = self.clock()
        conn.execute(update(executions).where(executions.c.id == ex["id"]).values(**values))
        ex.update(values)

    def _progress(self, row: dict[str, Any], outputs: dict[str, Any]) -> None:
        row["outputs"] = {**row["outputs"], **outputs}
        with self.store.begin() as conn:
            conn.execute(update(execution_steps).where(execution_steps.c.id == row["id"]).values(outputs=row["outputs"]))

    def _watch(self, ex: dict[str, Any], max_score: float, band: dict[str, Any], purpose: str) -> None:
        """Ask the pipeline to follow the alert's series and say since when it has looked normal."""
        if ex["series_id"] is None:
            return
        w = verification_watches.c
        with self.store.begin() as conn:
            conn.execute(delete(verification_watches).where(w.execution_id == ex["id"], w.purpose == purpose))
            conn.execute(insert(verification_watches), [{
                "execution_id": ex["id"], "purpose": purpose, "series_id": ex["series_id"], "max_score": max_score,
                "lower": band.get("lower"), "upper": band.get("upper"),
                "normal_since": None, "last_ts": None, "last_value": None, "last_score": None,
            }])

    def _watched(self, execution_id: int, purpose: str):
        w = verification_watches.c
        with self.store.begin() as conn:
            return conn.execute(select(verification_watches).where(w.execution_id == execution_id, w.purpose == purpose)).first()

    def _unwatch(self, execution_id: int, purpose: str) -> None:
        w = verification_watches.c
        with self.store.begin() as conn:
            conn.execute(delete(verification_watches).where(w.execution_id == execution_id, w.purpose == purpose))

    @staticmethod
    def _row(conn: Connection, execution_id: int) -> dict[str, Any] | None:
        found = conn.execute(select(executions).where(executions.c.id == execution_id)).first()
        return None if found is None else dict(found._mapping)
