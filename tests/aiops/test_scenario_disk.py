"""Scenario: the demo's disk-filling incident raises a predictive alert long before the disk is full.

The demo fleet runs through the real service on a simulated clock with the demo's own forecasting
settings (`DemoRuntime.settings`: 10-second buckets, a line through the last minute of each disk,
alert when full within 30 minutes). The disk starts filling at a known time and rate; the test
expects the predictive alert within seconds of that, naming the host, with the likely time to full
close to the truth, and its resolution once the incident is over and the disk is back to normal.
"""

from __future__ import annotations

from fastapi.testclient import TestClient
from helpers import SettableClock

from aiops.api import create_app
from aiops.config_loader import load_settings
from aiops.demo.runtime import DemoRuntime
from aiops.demo.simulator import FleetSimulator
from aiops.service import Service

ORIGIN = 1_795_000_000.0  # in the past, as the ingest wants


def test_the_demo_disk_incident_raises_a_predictive_alert_before_the_disk_is_full(tmp_path):
    base = load_settings(None, environ={"AIOPS_DATA_DIR": str(tmp_path), "AIOPS_REMEDIATION__EXECUTOR": "false"})
    with DemoRuntime(base) as runtime:
        settings = runtime.settings(base)
    sim = FleetSimulator(origin=ORIGIN, first_incident_after_s=20, incident_every_s=60, incident_duration_s=60)
    disk = sim.incidents_between(ORIGIN, ORIGIN + 300)[3]
    assert disk.kind == "disk_filling"
    clock = SettableClock(ORIGIN - 26 * 3600)
    service = Service(settings, clock=clock)
    with TestClient(create_app(service)) as client:
        service.pipeline.stop(drain=False)  # the test steps the pipeline and the forecast runs itself

        def feed(ts: float) -> None:
            clock.now = ts
            assert client.post("/api/v1/metrics", json=sim.sample(ts)).status_code == 202
            while service.pipeline.run_once(timeout=0.0):
                pass
            if ts % 10 == 0:  # the forecast thread's schedule (every 10 s)
                service.forecasts.verdicts.put(service.forecasts.run_once())
                clock.now += 1
                service.pipeline.run_once(timeout=0.0)

        for k in range(26 * 60, 0, -1):
            feed(ORIGIN - 60.0 * k)
        opened = None
        ts = ORIGIN
        while ts < disk.end + 120:
            feed(ts)
            found = [a for a in client.get("/api/v1/alerts", params={"limit": 1000}).json()["items"]
                     if a["kind"] == "predictive"]
            if found and opened is None:
                opened = (ts, found[0])
            ts += 5.0
        assert opened is not None, "no predictive alert"
        at, alert = opened
        assert alert["labels"]["host"] == disk.host and alert["labels"]["__name__"] == "disk_used_percent"
        assert at - disk.start <= 20  # within 20 s of the disk starting to fill
        assert "reaches 100 in ~" in alert["summary"] and alert["details"]["value"] < 60  # far from full
        [last] = [a for a in client.get("/api/v1/alerts", params={"limit": 1000}).json()["items"] if a["id"] == alert["id"]]
        assert last["state"] == "resolved"  # the risk went with the incident
        forecast = last["details"]["explanation"]["forecast"]  # its last update, a full minute of filling in view
        truth = forecast["at"] + (100 - last["details"]["value"]) / 0.1  # the simulated disk gains 0.1 points a second
        assert abs(forecast["likely"] - truth) < 0.15 * (truth - forecast["at"]), (forecast, truth)
