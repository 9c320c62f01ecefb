"""`aiops demo` as a newcomer runs it: a real server process whose simulated fleet raises an alert.

The schedule is shortened through environment overrides (first incident after 2 s, 1 s samples), so
the test shows within seconds what `make run` shows within a minute.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import httpx
import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def demo_server(tmp_path):
    port = _free_port()
    env = {
        **os.environ,
        "AIOPS_DATA_DIR": str(tmp_path),
        "AIOPS_DEMO__FIRST_INCIDENT_AFTER_S": "2",
        "AIOPS_DEMO__INTERVAL_S": "1",
        "AIOPS_DEMO__BACKFILL_HOURS": "26",
    }
    log = open(tmp_path / "server.log", "w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiops", "demo", "--port", str(port), "--log-format", "json"],
        env=env,
        stderr=log,
        stdout=log,
    )
    try:
        yield f"http://127.0.0.1:{port}", tmp_path / "server.log"
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()


def _raised_by(incident: dict, alerts: list[dict]) -> bool:
    return any(a["first_seen"] >= incident["start"] and a["labels"].get("host") == incident["host"] for a in alerts)


def test_demo_raises_an_alert_from_an_injected_incident_and_counters_move(demo_server):
    url, log_path = demo_server

    def incidents() -> list[dict]:
        lines = [json.loads(l) for l in log_path.read_text().splitlines() if l.startswith("{")]
        return [l for l in lines if "injected incident" in l["message"]]

    alerts: list = []
    deadline = time.monotonic() + 60
    with httpx.Client(base_url=url, timeout=5) as client:
        while time.monotonic() < deadline and not (incidents() and _raised_by(incidents()[0], alerts)):
            try:
                alerts = client.get("/api/v1/alerts").json()["items"]
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        assert alerts, "no alert within 60 s:\n" + log_path.read_text()[-3000:]
        metrics = client.get("/metrics").text
    injected = incidents()[0]
    raised = [a for a in alerts if a["first_seen"] >= injected["start"] and a["labels"].get("host") == injected["host"]]
    assert raised, (injected, alerts)
    alert = raised[0]
    assert alert["labels"]["env"] == "demo" and alert["labels"]["service"] == injected["service"]
    assert alert["details"]["value"] > alert["details"]["upper"]  # the explanation shows the band it left
    accepted = next(float(l.split()[-1]) for l in metrics.splitlines() if l.startswith("aiops_ingest_points_accepted_total"))
    assert accepted > 1000  # the backfill and the live samples went through the public ingest path
    spans = next(float(l.split()[-1]) for l in metrics.splitlines() if l.startswith("aiops_ingest_spans_accepted_total"))
    assert spans > 1000  # and the fleet's traces, through POST /v1/traces
    edges = client_get(url, "/api/v1/topology")["edges"]  # the dependency map comes from them, not from configuration
    assert {(e["caller"], e["callee"], e["source"]) for e in edges} == {
        ("checkout", "payments", "traced"), ("checkout", "search", "traced"), ("payments", "search", "traced")}

    # and it heals it: the runbook's Jenkins job scales the service out, verification sees the CPU recover,
    # the incident resolves (docs/remediation.md; `make run` shows this within two minutes)
    def healed() -> list[dict]:
        return [e for e in client_get(url, "/api/v1/executions")["items"]
                if e["target"] == injected["host"] and e["runbook"] == "scale-out-on-cpu-saturation"]

    done = _until(healed, lambda found: found and found[0]["state"] in ("succeeded", "failed", "rolled_back", "escalated"), 120)
    assert done and done[0]["state"] == "succeeded", (done, log_path.read_text()[-3000:])
    execution = client_get(url, f"/api/v1/executions/{done[0]['id']}")
    assert execution["steps"][0]["action"] == "jenkins" and execution["steps"][0]["outputs"]["result"] == "SUCCESS"
    incident = client_get(url, f"/api/v1/incidents/{done[0]['incident_id']}")
    assert incident["state"] in ("resolved", "open", "acknowledged")  # resolved unless other (noise) alerts joined it
    assert any(t["kind"] in ("resolved", "remediation_partial") and t["actor"] == "runbook:scale-out-on-cpu-saturation"
               for t in incident["timeline"])


def client_get(url: str, path: str) -> dict:
    return httpx.get(url + path, timeout=5).json()


def _until(fetch, ok, timeout: float):
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        try:
            value = fetch()
        except httpx.HTTPError:
            value = None
        if value is not None and ok(value):
            return value
        time.sleep(0.5)
    return value
