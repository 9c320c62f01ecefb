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
    yield from _demo(tmp_path, AIOPS_DEMO__BACKFILL_HOURS="26")


@pytest.fixture
def demo_with_an_early_error_burst(tmp_path):
    """Incidents every 4 s, so the third (an error burst, 3 s) begins 10 s in; logs counted per 2 s (so the burst
    spans intervals, as the default minute-long burst spans the demo's 10 s ones); 36 min of history (warm-up)."""
    yield from _demo(tmp_path, AIOPS_DEMO__BACKFILL_HOURS="0.6", AIOPS_DEMO__INCIDENT_EVERY_S="4",
                     AIOPS_DEMO__INCIDENT_DURATION_S="3", AIOPS_LOGS__INTERVAL_S="2")


def _demo(tmp_path, **overrides: str):
    port = _free_port()
    env = {
        **os.environ,
        "AIOPS_DATA_DIR": str(tmp_path),
        "AIOPS_DEMO__FIRST_INCIDENT_AFTER_S": "2",
        "AIOPS_DEMO__INTERVAL_S": "1",
        **overrides,
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
    return any(a["first_seen"] >= incident["start"] and a["labels"].get("host") == incident["host"]
               and not a["labels"]["__name__"].startswith("log_") for a in alerts)


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
    raised = [a for a in alerts if a["first_seen"] >= injected["start"] and a["labels"].get("host") == injected["host"]
              and not a["labels"]["__name__"].startswith("log_")]  # logs may alert too (the next test)
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


def test_the_demo_logs_and_its_error_burst_becomes_log_anomalies_with_example_lines(demo_with_an_early_error_burst):
    url, log_path = demo_with_an_early_error_burst

    def from_bursts() -> list[dict]:
        """Log alerts of a service while it had an error burst (the calm services' logs may raise noise too)."""
        lines = [json.loads(l) for l in log_path.read_text().splitlines() if l.startswith("{")]
        bursts = [l for l in lines if "injected incident" in l["message"] and l["incident"] == "error_burst"]
        items = client_get(url, "/api/v1/alerts?limit=200")["items"]
        return [a for a in items if a["labels"]["__name__"].startswith("log_") and any(
            a["labels"]["service"] == b["service"] and b["start"] - 2 <= a["first_seen"] <= b["start"] + 5 for b in bursts)]

    def both(alerts: list[dict]) -> bool:
        return {a["labels"]["__name__"] for a in alerts} == {"log_template_count", "log_error_count"}

    alerts = _until(from_bursts, both, 45)
    assert alerts and both(alerts), (alerts, log_path.read_text()[-3000:])
    new = next(a for a in alerts if a["labels"]["__name__"] == "log_template_count")
    assert new["severity"] == "critical" and "new log template" in new["summary"]
    assert new["details"]["explanation"]["log"]["template"] == (
        "connection pool exhausted for <*>: <*> of <*> connections busy, timeout after <*> ms")
    errors = next(a for a in alerts if a["labels"]["__name__"] == "log_error_count")
    anomalies = client_get(url, f"/api/v1/anomalies?name=log_error_count&label=host={errors['labels']['host']}")["items"]
    assert any(a["alert_id"] == errors["id"] and a["detector"] == "ensemble" and a["value"] > a["upper"]
               for a in anomalies)  # the ensemble saw the burst of errors leave its band
    logged = errors["details"]["explanation"]["log"]
    assert "connection pool exhausted for <*>: <*> of <*> connections busy, timeout after <*> ms" in logged["templates"]
    for alert in (new, errors):
        examples = alert["details"]["explanation"]["log"]["examples"]
        assert examples and any(line.startswith("connection pool exhausted for db-") for line in examples)


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
