"""Executors as real processes (`aiops executor`) on the PostgreSQL test database.

- Two executors share the store: every execution runs exactly once (each step's idempotency key
  reaches the receiver once), and all of them finish.
- An executor killed with SIGKILL in the middle of a step: a second executor takes the execution
  over when the lease runs out, retries the idempotent step with the same idempotency key and
  finishes; a step that is not idempotent is escalated instead of being run twice.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
import yaml
from emulators.http_receiver import HttpReceiver, Reply
from helpers import insert_alert, wait_for
from sqlalchemy import select, text

from aiops.executions import Planner
from aiops.settings import Settings
from aiops.store import StoreEngine
from aiops.store.schema import alerts, executions, metadata


def _config(tmp_path, url: str, receiver: str, idempotent: bool = True, lease_s: float = 2.0) -> tuple[str, Settings]:
    config = {
        "data_dir": str(tmp_path),
        "store": {"url": url},
        "remediation": {
            "lease_s": lease_s, "poll_s": 0.1, "workers": 2,
            "runbooks": [{
                "name": "restart", "target": "{{ labels.host }}",
                "steps": [{"name": "restart", "action": "http", "idempotent": idempotent, "timeout_s": 30,
                           "with": {"url": receiver + "/restart/{{ labels.host }}"}}],
                "verify": None,
            }],
        },
    }
    path = tmp_path / "executor.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path), Settings.model_validate(config)


@pytest.fixture
def pg(pg_database):
    store = StoreEngine(pg_database)
    with store.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(t.name for t in metadata.sorted_tables)} RESTART IDENTITY CASCADE"))
    yield pg_database, store
    store.close()


def _executor_process(config: str, log) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "aiops", "executor", "--config", config], stdout=log, stderr=log,
                            env={**os.environ, "AIOPS_LOGGING__LEVEL": "warning"})


def _plan(store, settings: Settings, hosts: int) -> list[int]:
    planner = Planner(settings.remediation)
    ids = []
    for i in range(hosts):
        alert_id = insert_alert(store, series_id=i, labels={"service": "api", "host": f"api-{i}"})
        with store.begin() as conn:
            row = dict(conn.execute(select(alerts).where(alerts.c.id == alert_id)).first()._mapping)
            execution_id, decision = planner.create(conn, planner.runbooks["restart"], row, time.time(), "test")
        assert execution_id is not None, decision
        ids.append(execution_id)
    return ids


def _states(store) -> dict[int, str]:
    with store.begin() as conn:
        return {r.id: r.state for r in conn.execute(select(executions.c.id, executions.c.state))}


def test_two_executors_run_every_execution_exactly_once(pg, tmp_path):
    url, store = pg
    with HttpReceiver() as receiver:
        receiver.replies = [Reply(200, delay_s=0.05)] * 40
        config, settings = _config(tmp_path, url, receiver.url)
        ids = _plan(store, settings, hosts=40)
        with open(tmp_path / "executors.log", "w+") as log:
            procs = [_executor_process(config, log) for _ in range(2)]
            try:
                states = wait_for(lambda: _states(store), lambda s: all(v == "succeeded" for v in s.values()), timeout=60)
            finally:
                for p in procs:
                    p.terminate()
                    p.wait(20)
        assert set(states) == set(ids) and set(states.values()) == {"succeeded"}, (states, (tmp_path / "executors.log").read_text())
        keys = Counter(r.headers["idempotency-key"] for r in receiver.requests)
        assert len(keys) == 40 and set(keys.values()) == {1}  # each step reached the receiver exactly once
        with store.begin() as conn:
            owners = {r.requested_by for r in conn.execute(select(executions.c.requested_by))}
        assert owners == {"test"}


@pytest.mark.parametrize("idempotent", [True, False])
def test_a_killed_executor_is_taken_over_and_its_step_retried_only_if_idempotent(pg, tmp_path, idempotent):
    url, store = pg
    with HttpReceiver() as receiver:
        receiver.replies = [Reply(200, delay_s=5.0)]  # the first call hangs: the executor is killed while it waits
        config, settings = _config(tmp_path, url, receiver.url, idempotent=idempotent)
        [execution_id] = _plan(store, settings, hosts=1)
        with open(tmp_path / "executors.log", "w+") as log:
            first = _executor_process(config, log)
            try:
                wait_for(lambda: len(receiver.requests), lambda n: n == 1, timeout=30)
            finally:
                first.send_signal(signal.SIGKILL)
                first.wait(10)
            assert _states(store)[execution_id] == "running"
            second = _executor_process(config, log)
            try:
                final = wait_for(lambda: _states(store)[execution_id], lambda s: s in ("succeeded", "escalated"), timeout=30)
            finally:
                second.terminate()
                second.wait(20)
        keys = [r.headers["idempotency-key"] for r in receiver.requests]
        if idempotent:
            assert final == "succeeded" and keys == [f"aiops-exec-{execution_id}-steps-0"] * 2
        else:
            assert final == "escalated" and len(keys) == 1
