"""Scenario: the demo's latency regression on a service that two others depend on.

The demo fleet (26 h of history, then live samples every 5 s) runs through the real service with
the default detector on a simulated clock. The regression on `search` spreads to `payments` and
`checkout`, which call it, ten seconds later; a deploy of `search` landed 30 s before. Grouping by
labels is switched off (`group_by: []`), so only the dependency map can join the three services'
alerts: the test expects one incident, not three, with `search` ranked first and the deploy listed
as its likely cause.
"""

from __future__ import annotations

from fastapi.testclient import TestClient
from helpers import SettableClock, fleet_with_search_regression

from aiops.api import create_app
from aiops.config_loader import load_settings
from aiops.demo.simulator import demo_topology
from aiops.service import Service


def test_a_regression_upstream_of_two_services_is_one_incident_with_its_origin_and_deploy_first(tmp_path):
    sim = fleet_with_search_regression()
    regression = sim.incidents_between(sim.origin, sim.origin + 1000)[1]
    assert regression.kind == "latency_regression" and sorted(sim.topology) == ["checkout", "payments"]
    clock = SettableClock(sim.origin - 26 * 3600)
    settings = load_settings(None, environ={
        "AIOPS_DATA_DIR": str(tmp_path),
        "AIOPS_ALERTING__INCIDENTS__GROUP_BY": "[]",
        "AIOPS_ALERTING__INCIDENTS__TOPOLOGY": str(demo_topology(sim.services)).replace("'", '"'),
    })
    service = Service(settings, clock=clock)
    with TestClient(create_app(service)) as client:
        service.pipeline.stop(drain=False)  # the test steps the pipeline itself, in simulated time

        def feed(ts: float) -> None:
            clock.now = ts
            for change in sim.changes_between(ts - step, ts):
                assert client.post("/api/v1/events", json=change).status_code == 201
            assert client.post("/api/v1/metrics", json=sim.sample(ts)).status_code == 202
            while service.pipeline.run_once(timeout=0.0):
                pass

        step = 60.0  # the backfill: 26 h a minute apart, as the demo sends it
        for k in range(26 * 60, 0, -1):
            feed(sim.origin - k * step)
        step = 5.0  # then live
        ts = sim.origin
        while ts < regression.start + 90:
            feed(ts)
            ts += step

        regression_alerts = {
            a["id"] for a in client.get("/api/v1/alerts", params={"limit": 1000}).json()["items"]
            if a["first_seen"] >= regression.start and a["labels"]["__name__"] == "http_request_duration_seconds"
        }
        assert len(regression_alerts) >= 9  # most of the 12 hosts' latency series alarm (some may already be firing)
        holding = []
        for incident in client.get("/api/v1/incidents").json()["items"]:
            detail = client.get(f"/api/v1/incidents/{incident['id']}").json()
            if regression_alerts & {a["id"] for a in detail["alerts"]}:
                holding.append(detail)
        assert len(holding) == 1  # one incident, not three
        detail = holding[0]
        assert regression_alerts <= {a["id"] for a in detail["alerts"]}
        assert detail["services"] == ["checkout", "payments", "search"]
        origins = detail["origins"]
        assert origins[0]["service"] == "search"
        assert "checkout, payments depend on it" in origins[0]["reasons"]
        cause = detail["likely_causes"][0]
        assert (cause["kind"], cause["labels"]["service"], cause["ts"]) == ("deploy", "search", regression.start - 30)
        assert cause["lead_s"] == 30
