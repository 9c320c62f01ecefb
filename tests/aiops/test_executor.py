"""The executor's state machine against a real store (SQLite and PostgreSQL), on a clock the test moves.

The pipeline's part (watching the alert's series) is played by `WatchKeeper` fed with hand-made
batches, so verification sees exactly the points the test chooses.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from emulators.http_receiver import HttpReceiver, Reply
from helpers import SettableClock, insert_alert
from sqlalchemy import insert, select

from aiops.executions import Planner, set_kill_switch, steps_of
from aiops.executor import Executor, IncidentHooks
from aiops.settings import Settings
from aiops.store import StoreEngine
from aiops.store.schema import alerts, execution_steps, executions
from aiops.watches import WatchKeeper
from detectors import MetricBatch
from remediation.actions import HttpCall


class Recorder(IncidentHooks):
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def started(self, conn, execution, now):
        self.events.append(("started", execution["state"]))

    def healed(self, conn, execution, now, reason):
        self.events.append(("healed", reason))

    def escalate(self, conn, execution, steps, runbook, now):
        self.events.append(("escalate", execution["state"]))


def _settings(url: str, **runbook) -> Settings:
    base = {
        "name": "restart-api",
        "match": {"selector": '{service="api"}'},
        "params": {"host": "{{ labels.host }}"},
        "steps": [{"name": "restart", "action": "http", "with": {"url": url + "/restart", "json": {"host": "{{ params.host }}"}},
                   "retry": {"max_attempts": 2, "backoff_s": 0}}],
        "rollback": [{"name": "undo", "action": "http", "with": {"url": url + "/undo"}}],
        "verify": {"max_score": 0.5, "for_s": 60, "deadline_s": 300},
    }
    return Settings.model_validate({"remediation": {"runbooks": [{**base, **runbook}], "lease_s": 10}})


@pytest.fixture
def rig(store_url):
    clock = SettableClock(1_000.0)
    store = StoreEngine(store_url)
    store.migrate()
    with HttpReceiver() as receiver:
        yield clock, store, receiver
    store.close()


def _executor(store, settings, clock, hooks=None, owner="a") -> Executor:
    return Executor(store, settings, hooks or Recorder(), clock=clock, sleep=lambda s: None,
                    http=HttpCall(sleep=lambda s: None, clock=clock), owner=owner)


def _plan(store, settings, clock, alert_id: int, **kw) -> int:
    planner = Planner(settings.remediation)
    with store.begin() as conn:
        row = dict(conn.execute(select(alerts).where(alerts.c.id == alert_id)).first()._mapping)
        execution_id, decision = planner.create(conn, planner.runbooks["restart-api"], row, clock(), "test", **kw)
    assert execution_id is not None, decision
    return execution_id


def _state(store, execution_id: int) -> dict:
    with store.begin() as conn:
        row = dict(conn.execute(select(executions).where(executions.c.id == execution_id)).first()._mapping)
        row["steps"] = steps_of(conn, execution_id)
    return row


def _feed(store, keeper: WatchKeeper, ts: list[float], values: list[float], scores: list[float]) -> None:
    with store.begin() as conn:
        keeper.refresh(conn)
    n = len(ts)
    batch = MetricBatch.from_arrays(np.zeros(n), np.array(ts, float), np.array(values, float))
    keeper.observe(store.begin, batch, np.array(values, float), np.array(scores, float), np.ones(n, bool))


def test_act_then_verify_then_healed(rig):
    clock, store, receiver = rig
    settings = _settings(receiver.url)
    execution_id = _plan(store, settings, clock, insert_alert(store))
    hooks = Recorder()
    executor = _executor(store, settings, clock, hooks)
    assert executor.run_once()
    ex = _state(store, execution_id)
    assert ex["state"] == "verifying" and ex["lease_owner"] is None and ex["wake_at"] == clock.now + 1
    call = receiver.requests[0]
    assert call.path == "/restart" and json.loads(call.body) == {"host": "api-1"}
    assert call.headers["idempotency-key"] == f"aiops-exec-{execution_id}-steps-0"
    assert not executor.run_once()  # not due yet

    keeper = WatchKeeper()
    _feed(store, keeper, [1_000, 1_030], [0.2, 0.21], [0.1, 0.1])  # normal, but only for 30 s
    clock.now += 2
    assert executor.run_once() and _state(store, execution_id)["state"] == "verifying"
    _feed(store, keeper, [1_045, 1_060], [0.9, 0.2], [0.9, 0.05])  # a relapse restarts the streak at 1060
    _feed(store, keeper, [1_090, 1_120], [0.2, 0.2], [0.05, 0.05])
    clock.now += 2
    executor.run_once()
    ex = _state(store, execution_id)
    assert ex["state"] == "succeeded" and "normal for 60 s" in ex["reason"]
    assert hooks.events == [("started", "running"), ("healed", ex["reason"])]
    assert [s["state"] for s in ex["steps"]] == ["succeeded"]


def test_not_normal_by_the_deadline_rolls_back_and_escalates(rig):
    clock, store, receiver = rig
    settings = _settings(receiver.url)
    execution_id = _plan(store, settings, clock, insert_alert(store))
    hooks = Recorder()
    executor = _executor(store, settings, clock, hooks)
    executor.run_once()
    _feed(store, WatchKeeper(), [1_010, 1_020], [2.0, 2.1], [0.2, 0.2])  # low score, but outside the opening band
    clock.now += 301
    executor.run_once()
    ex = _state(store, execution_id)
    assert ex["state"] == "rolled_back" and ex["reason"].startswith("not verified within 300 s (last value 2.1")
    assert [(s["phase"], s["name"], s["state"]) for s in ex["steps"]] == [("steps", "restart", "succeeded"),
                                                                          ("rollback", "undo", "succeeded")]
    assert [r.path for r in receiver.requests] == ["/restart", "/undo"]
    assert hooks.events[-1] == ("escalate", "rolled_back")


def test_a_refused_step_is_not_retried_and_a_failing_one_is_then_both_roll_back(rig):
    clock, store, receiver = rig
    settings = _settings(receiver.url)
    execution_id = _plan(store, settings, clock, insert_alert(store))
    receiver.replies = [Reply(400, body=b'{"error": "no such host"}')]
    executor = _executor(store, settings, clock)
    executor.run_once()
    ex = _state(store, execution_id)
    assert ex["state"] == "failed" and "step 'restart' failed" in ex["reason"] and "HTTP 400" in ex["reason"]
    assert len(receiver.requests) == 2  # the refused call once, then the rollback

    second = _plan(store, settings, clock, insert_alert(store, series_id=1, labels={"service": "api", "host": "api-2"}))
    receiver.replies = [Reply(503), Reply(503)]  # both attempts of the step fail
    executor.run_once()
    assert _state(store, second)["state"] == "failed" and len(receiver.requests) == 5


def test_a_step_found_running_after_a_crash_is_retried_only_if_idempotent(rig):
    clock, store, receiver = rig
    settings = _settings(receiver.url)
    idempotent = _plan(store, settings, clock, insert_alert(store))
    _crashed_mid_step(store, idempotent, clock, receiver.url + "/restart")
    executor = _executor(store, settings, clock)
    executor.run_once()
    ex = _state(store, idempotent)
    assert ex["state"] == "verifying" and ex["steps"][0]["attempts"] == 2
    assert receiver.requests[0].headers["idempotency-key"] == f"aiops-exec-{idempotent}-steps-0"  # the same key as before

    unsafe = _settings(receiver.url, steps=[{"name": "restart", "action": "http", "idempotent": False,
                                             "with": {"url": receiver.url + "/restart"}}])
    other = _plan(store, unsafe, clock, insert_alert(store, series_id=1, labels={"service": "api", "host": "api-2"}))
    _crashed_mid_step(store, other, clock, receiver.url + "/restart")
    hooks = Recorder()
    _executor(store, unsafe, clock, hooks).run_once()
    ex = _state(store, other)
    assert ex["state"] == "escalated" and "not idempotent" in ex["reason"] and hooks.events[-1] == ("escalate", "escalated")
    assert len(receiver.requests) == 1  # nothing sent for it


def _crashed_mid_step(store, execution_id: int, clock, url: str) -> None:
    """What a kill -9 between writing a step's row and finishing its action leaves behind."""
    with store.begin() as conn:
        conn.execute(executions.update().where(executions.c.id == execution_id).values(state="running", started_at=clock()))
        conn.execute(insert(execution_steps), [{
            "execution_id": execution_id, "phase": "steps", "idx": 0, "name": "restart", "action": "http",
            "state": "running", "attempts": 1, "inputs": {"url": url}, "outputs": {}, "error": None,
            "idempotency_key": f"aiops-exec-{execution_id}-steps-0", "started_at": clock(), "finished_at": None,
        }])


def test_waits_release_the_lease_and_a_dead_executors_lease_is_taken_over(rig):
    clock, store, receiver = rig
    settings = _settings(receiver.url, steps=[{"name": "settle", "action": "wait", "with": {"seconds": 30}}], verify=None)
    execution_id = _plan(store, settings, clock, insert_alert(store))
    a, b = _executor(store, settings, clock, owner="a"), _executor(store, settings, clock, owner="b")
    a.run_once()
    ex = _state(store, execution_id)
    assert (ex["state"], ex["wake_at"], ex["lease_owner"]) == ("running", 1_030.0, None)
    clock.now = 1_030
    assert a.claim() == execution_id  # a claims it and dies holding the lease
    assert b.claim() is None
    clock.now += 11  # the lease (10 s) runs out
    assert b.run_once()
    assert _state(store, execution_id)["state"] == "succeeded"


def test_kill_switch_holds_everything_but_dry_runs_and_approval_holds_until_decided(rig):
    clock, store, receiver = rig
    settings = _settings(receiver.url)
    held = _plan(store, settings, clock, insert_alert(store))
    with store.begin() as conn:
        set_kill_switch(conn, True, "incident review", "alice", clock())
    executor = _executor(store, settings, clock)
    assert not executor.run_once()
    dry = _plan(store, settings, clock, insert_alert(store, series_id=1, labels={"service": "api", "host": "api-2"}),
                force_dry_run=True)
    assert executor.run_once()
    ex = _state(store, dry)
    assert ex["state"] == "succeeded" and ex["dry_run"] and ex["steps"][0]["state"] == "dry_run"
    assert ex["steps"][0]["outputs"]["would"]["with"] == {"url": receiver.url + "/restart", "json": {"host": "api-2"}}
    assert receiver.requests == [] and _state(store, held)["state"] == "pending"
    with store.begin() as conn:
        set_kill_switch(conn, False, "review done", "alice", clock())
    assert executor.run_once() and _state(store, held)["state"] == "verifying"

    gated = _settings(receiver.url, guards={"approval": {"approvers": ["bob"]}})
    waiting = _plan(store, gated, clock, insert_alert(store, series_id=2, labels={"service": "api", "host": "api-3"}))
    assert _state(store, waiting)["state"] == "awaiting_approval"
    assert not _executor(store, gated, clock).run_once()


def _jenkins_settings(emulator) -> Settings:
    return Settings.model_validate({"remediation": {
        "lease_s": 10,
        "jenkins": {"ci": {"url": emulator.url, "user": emulator.user, "api_token": emulator.token, "poll_interval_s": 0.01}},
        "runbooks": [{"name": "restart-api", "match": {"selector": '{service="api"}'}, "verify": None,
                      "steps": [{"name": "redeploy", "action": "jenkins",
                                 "with": {"job": "remediate", "params": {"HOST": "{{ labels.host }}"}}}]}],
    }})


def test_a_jenkins_step_triggers_follows_and_maps_the_result_and_a_resumed_one_follows_without_retriggering(rig):
    from emulators.jenkins import Job, JenkinsEmulator

    clock, store, _ = rig
    with JenkinsEmulator(jobs={"remediate": Job(result="SUCCESS", queue_polls=2, build_polls=2)}) as jenkins:
        settings = _jenkins_settings(jenkins)
        execution_id = _plan(store, settings, clock, insert_alert(store))
        _executor(store, settings, clock).run_once()
        ex = _state(store, execution_id)
        assert ex["state"] == "succeeded" and ex["steps"][0]["outputs"]["result"] == "SUCCESS"
        assert [b.params for b in jenkins.builds] == [{"HOST": "api-1"}]

        # a step that had triggered (its queue item on record) when the executor died is followed, not re-run
        jenkins.jobs["remediate"] = Job(result="FAILURE", queue_polls=1, build_polls=1)
        other = _plan(store, settings, clock, insert_alert(store, series_id=1, labels={"service": "api", "host": "api-2"}))
        from connectors.jenkins import JenkinsAction

        queued = JenkinsAction(settings.remediation.jenkins["ci"]).trigger("remediate", {"HOST": "api-2"})
        _crashed_mid_step(store, other, clock, "unused")
        with store.begin() as conn:
            conn.execute(execution_steps.update().where(execution_steps.c.execution_id == other)
                         .values(action="jenkins", name="redeploy", outputs={"queue_url": queued.queue_url}))
        _executor(store, settings, clock).run_once()
        ex = _state(store, other)
        assert ex["state"] == "failed" and "ended FAILURE" in ex["reason"] and len(jenkins.builds) == 2
