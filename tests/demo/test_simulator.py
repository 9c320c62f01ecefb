"""The demo fleet: deterministic, in range, on schedule, and its incidents unmistakable."""

from __future__ import annotations

import numpy as np
import pytest

from aiops.demo import INCIDENT_KINDS, METRICS, FleetSimulator

ORIGIN = 1_800_000_000.0


@pytest.fixture
def sim() -> FleetSimulator:
    return FleetSimulator(services=3, hosts_per_service=4, seed=7, origin=ORIGIN,
                          first_incident_after_s=20, incident_every_s=120, incident_duration_s=60)


def test_sample_is_deterministic_whatever_the_order(sim):
    a = sim.sample(ORIGIN - 300)
    sim.sample(ORIGIN - 60)
    b = sim.sample(ORIGIN - 300)
    assert a == b
    other = FleetSimulator(services=3, hosts_per_service=4, seed=7, origin=ORIGIN)
    assert other.sample(ORIGIN - 300) == a


def test_one_point_per_metric_per_host_in_physical_ranges(sim):
    for ts in np.linspace(ORIGIN - 86400, ORIGIN + 600, 97):
        points = sim.sample(float(ts))
        assert len(points) == 3 * 4 * len(METRICS)
        for p in points:
            assert p["ts"] == ts and {"service", "host", "cluster", "env"} <= set(p["labels"])
            if p["name"].endswith("_percent"):
                assert 0 <= p["value"] <= 100
            elif p["name"] == "http_error_ratio":
                assert 0 <= p["value"] <= 1
            else:
                assert p["value"] > 0 and p["labels"]["quantile"] == "0.95"


def test_schedule_starts_after_origin_and_cycles_the_kinds(sim):
    assert sim.incident_at(ORIGIN - 1) is None and sim.incident_at(ORIGIN + 19.9) is None
    assert sim.incidents_between(ORIGIN - 86400, ORIGIN + 20) == []
    incidents = sim.incidents_between(ORIGIN, ORIGIN + 4 * 120)
    assert [i.kind for i in incidents] == list(INCIDENT_KINDS)
    assert [i.start for i in incidents] == [ORIGIN + 20 + 120 * k for k in range(4)]
    assert all(i.end - i.start == 60 for i in incidents)
    assert sim.incident_at(ORIGIN + 25) == incidents[0] and sim.incident_at(ORIGIN + 90) is None
    assert [i.host is None for i in incidents] == [False, True, True, False]


def _series(sim, ts_list, metric, host):
    m = METRICS.index(metric)
    h = [hh for _, hh in sim.hosts].index(host)
    return np.array([sim.values(t)[h, m] for t in ts_list])


@pytest.mark.parametrize("k", range(4))
def test_each_incident_stands_many_noise_deviations_out_only_where_it_hits(sim, k):
    incident = sim.incidents_between(ORIGIN, ORIGIN + 4 * 120)[k]
    metric = {
        "cpu_saturation": "cpu_usage_percent",
        "latency_regression": "http_request_duration_seconds",
        "error_burst": "http_error_ratio",
        "disk_filling": "disk_used_percent",
    }[incident.kind]
    hit = incident.host or next(h for s, h in sim.hosts if s == incident.service)
    spared = next(h for s, h in sim.hosts if s != incident.service)
    before = [incident.start - 5 * i for i in range(1, 60)]
    during = [incident.start + 5 + 5 * i for i in range(10)]
    for host, expect_hit in ((hit, True), (spared, False)):
        normal = _series(sim, before, metric, host)
        now = _series(sim, during, metric, host)
        z = np.abs(now - normal.mean()) / normal.std()
        assert (z.min() > 6) if expect_hit else (z.max() < 5), (incident.kind, host, z)
