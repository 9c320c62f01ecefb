"""The demo's logs: the same window gives the same lines; an error burst adds a new ERROR template on its service only."""

from __future__ import annotations

from aiops.demo.logs import BURST_RATE_PER_S, DemoLogs
from aiops.demo.simulator import FleetSimulator


def _lines(request: dict) -> dict[str, list[tuple[int, str]]]:
    out: dict[str, list[tuple[int, str]]] = {}
    for rl in request["resourceLogs"]:
        service = rl["resource"]["attributes"][0]["value"]["stringValue"]
        out.setdefault(service, []).extend((r["severityNumber"], r["body"]["stringValue"])
                                           for r in rl["scopeLogs"][0]["logRecords"])
    return out


def test_windows_are_deterministic_and_calm_before_the_first_incident():
    sim = FleetSimulator(origin=1_000_000.0, first_incident_after_s=100, incident_every_s=60, incident_duration_s=30)
    logs = DemoLogs(sim, rate_per_host_s=2.0)
    assert logs.export(900_000.0, 900_060.0) == logs.export(900_000.0, 900_060.0)
    lines = _lines(logs.export(900_000.0, 900_600.0))
    assert set(lines) == set(sim.services)
    total = sum(len(v) for v in lines.values())
    assert 0.8 * 2.0 * 600 * len(sim.hosts) < total < 1.2 * 2.0 * 600 * len(sim.hosts)
    severities = [s for v in lines.values() for s, _ in v]
    assert {9, 13, 17} <= set(severities) and severities.count(17) < 0.05 * total  # errors are rare when calm
    assert not any("connection pool exhausted" in text for v in lines.values() for _, text in v)


def test_an_error_burst_writes_a_new_error_template_on_every_host_of_its_service():
    sim = FleetSimulator(origin=1_000_000.0, first_incident_after_s=0, incident_every_s=60, incident_duration_s=30)
    burst = next(i for i in sim.incidents_between(1_000_000.0, 1_000_400.0) if i.kind == "error_burst")
    lines = _lines(DemoLogs(sim).export(burst.start, burst.end))
    pooled = {svc: [t for s, t in v if "connection pool exhausted" in t and s == 17] for svc, v in lines.items()}
    hosts = sum(1 for _, h in sim.hosts if h.startswith(burst.service))
    assert len(pooled[burst.service]) > 0.8 * BURST_RATE_PER_S * 30 * hosts
    assert all(not v for svc, v in pooled.items() if svc != burst.service)
