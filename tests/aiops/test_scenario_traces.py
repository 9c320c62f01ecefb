"""Scenario: the demo's latency regression seen in its traces, with no configured dependency map.

The demo fleet's metrics and traces (`aiops.demo.traces`) go through the real service on a simulated
clock: 26 h of history a minute apart, then live samples every 5 s, RED intervals of 5 s. The
regression on `search` slows the spans into it: the edges checkout → search and payments → search
and search's own latency series alarm. Only the traced map joins the three services' metric alerts
into one incident (grouping by labels is off and no topology is configured), with search first.
"""

from __future__ import annotations

from fastapi.testclient import TestClient
from helpers import SettableClock, fleet_with_search_regression

from aiops.api import create_app
from aiops.config_loader import load_settings
from aiops.demo.simulator import demo_topology
from aiops.demo.traces import DemoTraces, merge
from aiops.service import Service


def test_a_regression_shows_on_the_edges_into_the_slow_service_and_the_traced_map_groups_the_incident(tmp_path):
    sim = fleet_with_search_regression()
    traces = DemoTraces(sim, interval_s=5.0)
    regression = sim.incidents_between(sim.origin, sim.origin + 1000)[1]
    assert regression.kind == "latency_regression"
    clock = SettableClock(sim.origin - 26 * 3600)
    settings = load_settings(None, environ={
        "AIOPS_DATA_DIR": str(tmp_path),
        "AIOPS_ALERTING__INCIDENTS__GROUP_BY": "[]",
        "AIOPS_TRACES__INTERVAL_S": "5",
        "AIOPS_TRACES__GRACE_S": "0",
    })
    assert settings.alerting.incidents.topology == {}
    service = Service(settings, clock=clock)
    with TestClient(create_app(service)) as client:
        service.pipeline.stop(drain=False)  # the test steps the pipeline itself, in simulated time

        def feed(stamps: list[float]) -> None:
            for ts in stamps:
                clock.now = ts
                assert client.post("/api/v1/metrics", json=sim.sample(ts)).status_code == 202
            assert client.post("/v1/traces", json=merge([traces.export(ts) for ts in stamps])).json() == {}
            while service.pipeline.run_once(timeout=0.0):
                pass

        backfill = [sim.origin - k * 60.0 for k in range(26 * 60, 0, -1)]
        for i in range(0, len(backfill), 60):  # an hour of history per trace request
            feed(backfill[i:i + 60])
        ts = sim.origin
        while ts < regression.start + 90:
            feed([ts])
            ts += 5.0

        topology = client.get("/api/v1/topology").json()
        traced = {(e["caller"], e["callee"]) for e in topology["edges"] if e["source"] == "traced"}
        expected = {(caller, callee) for caller, callees in demo_topology(sim.services).items() for callee in callees}
        assert traced == expected and all(e["source"] == "traced" for e in topology["edges"])

        every = client.get("/api/v1/alerts", params={"limit": 1000}).json()["items"]
        quiet = [a for a in every if a["first_seen"] < regression.start and a["labels"]["__name__"].startswith(("span_", "edge_"))]
        assert quiet == []  # the traces' series do not alarm on their own noise
        alerts = [a for a in every if a["first_seen"] >= regression.start]
        edge_alerts = {(a["labels"]["caller"], a["labels"]["callee"]) for a in alerts
                       if a["labels"]["__name__"] == "edge_latency_p95_ms"}
        assert {("checkout", "search"), ("payments", "search")} <= edge_alerts  # the edges into the slow service
        assert any(a["labels"]["__name__"] == "span_latency_p95_ms" and a["labels"]["service"] == "search"
                   for a in alerts)
        edge_alert = next(a for a in alerts if a["labels"]["__name__"] == "edge_latency_p95_ms"
                          and a["labels"]["callee"] == "search")
        assert edge_alert["details"]["value"] > edge_alert["details"]["upper"]

        regression_alerts = {a["id"] for a in alerts if a["labels"]["__name__"] == "http_request_duration_seconds"}
        assert len(regression_alerts) >= 9
        holding = []
        for incident in client.get("/api/v1/incidents").json()["items"]:
            detail = client.get(f"/api/v1/incidents/{incident['id']}").json()
            if regression_alerts & {a["id"] for a in detail["alerts"]}:
                holding.append(detail)
        assert len(holding) == 1  # one incident: only the traced map connects the services
        detail = holding[0]
        assert detail["services"] == ["checkout", "payments", "search"]
        assert detail["origins"][0]["service"] == "search"
        assert "checkout, payments depend on it" in detail["origins"][0]["reasons"]
