"""The demo fleet: deterministic, in range, on schedule, and its incidents unmistakable where they hit."""

from __future__ import annotations

import numpy as np
import pytest

from aiops.demo import INCIDENT_KINDS, METRICS, FleetSimulator

ORIGIN = 1_800_000_000.0  # 2027-01-15 08:00 UTC
EFFECT = {
    "cpu_saturation": "cpu_usage_percent",
    "latency_regression": "http_request_duration_seconds",
    "error_burst": "http_error_ratio",
    "disk_filling": "disk_used_percent",
}


def make(**overrides) -> FleetSimulator:
    config = dict(services=3, hosts_per_service=4, seed=7, origin=ORIGIN,
                  first_incident_after_s=20, incident_every_s=120, incident_duration_s=60)  # fmt: skip
    return FleetSimulator(**(config | overrides))


@pytest.fixture
def sim() -> FleetSimulator:
    return make()


def _series(sim: FleetSimulator, ts_list, metric: str, host: str) -> np.ndarray:
    h = [hh for _, hh in sim.hosts].index(host)
    return np.array([sim.values(t)[h, METRICS.index(metric)] for t in ts_list])


# -- determinism ----------------------------------------------------------------------------------


def test_same_instant_gives_the_same_points_whatever_the_order_or_instance(sim):
    instants = [ORIGIN - 300.0, ORIGIN + 25.0, ORIGIN + 150.5, ORIGIN - 86400.0]
    first = [sim.sample(t) for t in instants]
    again = [sim.sample(t) for t in reversed(instants)][::-1]
    fresh = [make().sample(t) for t in instants]
    assert first == again == fresh
    assert first[0] != first[1]  # but noise does change from one instant to the next


def test_adding_services_leaves_the_existing_series_unchanged():
    small, large = make(services=2), make(services=5)
    for ts in (ORIGIN - 3600.0, ORIGIN - 0.25):
        assert np.array_equal(small.values(ts), large.values(ts)[: len(small.hosts)])


def test_another_seed_gives_another_fleet():
    assert not np.allclose(make(seed=7).values(ORIGIN - 60), make(seed=8).values(ORIGIN - 60))


def test_returned_points_can_be_mutated_without_touching_the_simulator(sim):
    points = sim.sample(ORIGIN - 60)
    points[0]["labels"]["host"] = "mutated"
    assert sim.sample(ORIGIN - 60)[0]["labels"]["host"] == "checkout-1"


# -- shape, labels, ranges --------------------------------------------------------------------------


def test_one_point_per_metric_per_host_with_the_labels_a_newcomer_filters_on(sim):
    points = sim.sample(ORIGIN)
    assert len(points) == 3 * 4 * len(METRICS) == 60
    assert {(p["labels"]["host"], p["name"]) for p in points} == {
        (f"{svc}-{i}", m) for svc in ("checkout", "payments", "search") for i in range(1, 5) for m in METRICS
    }
    assert points[3] == {
        "name": "http_request_duration_seconds",
        "labels": {"service": "checkout", "host": "checkout-1", "cluster": "demo-1", "env": "demo", "quantile": "0.95"},
        "ts": ORIGIN,
        "value": points[3]["value"],
    }
    assert all(("quantile" in p["labels"]) == (p["name"] == "http_request_duration_seconds") for p in points)


def test_values_stay_in_their_physical_ranges_over_a_day_and_through_incidents():
    # Long incidents back to back, so every kind runs long enough to push against its bound.
    sim = make(incident_every_s=900, incident_duration_s=900, first_incident_after_s=0)
    for ts in np.concatenate([np.linspace(ORIGIN - 86400, ORIGIN, 97), np.arange(ORIGIN, ORIGIN + 3600, 30.0)]):
        values = sim.values(float(ts))
        percent = values[:, [METRICS.index("cpu_usage_percent"), METRICS.index("memory_used_percent"),
                             METRICS.index("disk_used_percent")]]  # fmt: skip
        assert np.all((percent >= 0) & (percent <= 100))
        assert np.all(values[:, METRICS.index("http_request_duration_seconds")] > 0)
        ratio = values[:, METRICS.index("http_error_ratio")]
        assert np.all((ratio >= 0) & (ratio <= 1))


def test_cpu_follows_the_utc_time_of_day():
    sim = make()
    day = ORIGIN - ORIGIN % 86400 - 86400  # midnight UTC the day before, long before any incident
    cpu = METRICS.index("cpu_usage_percent")
    peak = np.mean([sim.values(day + 15 * 3600 + s)[:, cpu].mean() for s in range(0, 600, 60)])
    trough = np.mean([sim.values(day + 3 * 3600 + s)[:, cpu].mean() for s in range(0, 600, 60)])
    assert 20 < peak - trough < 30


def test_more_services_than_named_ones_still_get_distinct_names():
    sim = make(services=14, hosts_per_service=1)
    assert len(set(sim.services)) == 14 and sim.services[:3] == ("checkout", "payments", "search")
    assert sim.services[-1] == "service14"


@pytest.mark.parametrize(
    "overrides",
    [dict(services=0), dict(hosts_per_service=0), dict(incident_duration_s=0),
     dict(incident_duration_s=121), dict(first_incident_after_s=-1)],
)  # fmt: skip
def test_impossible_configurations_are_rejected(overrides):
    with pytest.raises(ValueError):
        make(**overrides)


# -- schedule -------------------------------------------------------------------------------------


def test_the_schedule_for_seed_7(sim):
    assert [(i.kind, i.service, i.host, i.start - ORIGIN, i.end - ORIGIN, i.description)
            for i in sim.incidents_between(ORIGIN, ORIGIN + 480)] == [  # fmt: skip
        ("cpu_saturation", "search", "search-4", 20, 80, "CPU saturation on search-4 (search)"),
        ("latency_regression", "checkout", None, 140, 200, "Latency regression on every host of checkout"),
        ("error_burst", "search", None, 260, 320, "Error burst on every host of search"),
        ("disk_filling", "payments", "payments-3", 380, 440, "Disk filling up on payments-3 (payments)"),
    ]


def test_no_incident_before_origin_and_the_first_after_the_configured_delay(sim):
    assert sim.incidents_between(ORIGIN - 86400, ORIGIN + 20) == []
    assert sim.incident_at(ORIGIN - 100) is None and sim.incident_at(ORIGIN + 19.999) is None
    assert sim.incident_at(ORIGIN + 20).start == ORIGIN + 20
    assert sim.incident_at(ORIGIN + 80) is None  # end is exclusive


def test_kinds_cycle_and_incident_at_agrees_with_incidents_between(sim):
    incidents = sim.incidents_between(ORIGIN, ORIGIN + 20 * 120)
    assert [i.kind for i in incidents] == list(INCIDENT_KINDS) * 5
    assert [i.start for i in incidents] == [ORIGIN + 20 + 120 * k for k in range(20)]
    assert {i.service for i in incidents} == set(sim.services)  # the seed spreads them over the fleet
    for ts in np.arange(ORIGIN - 30, ORIGIN + 20 * 120, 2.5):
        active = [i for i in incidents if i.start <= ts < i.end]
        assert sim.incident_at(float(ts)) == (active[0] if active else None)


def test_a_window_starting_mid_incident_includes_it(sim):
    assert [i.start for i in sim.incidents_between(ORIGIN + 50, ORIGIN + 141)] == [ORIGIN + 20, ORIGIN + 140]
    assert sim.incidents_between(ORIGIN + 80, ORIGIN + 140) == []


# -- effects --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", INCIDENT_KINDS)
def test_each_incident_stands_many_noise_deviations_out_only_where_it_hits(sim, kind):
    incident = next(i for i in sim.incidents_between(ORIGIN, ORIGIN + 480) if i.kind == kind)
    metric = EFFECT[kind]
    hit = {h for s, h in sim.hosts if s == incident.service and incident.host in (None, h)}
    assert len(hit) == (4 if incident.host is None else 1)
    before = [incident.start - 5 * i for i in range(1, 60)]  # five minutes of the normal level
    during = [incident.start + 5 * i for i in range(12)]
    after = [incident.end + 5 * i for i in range(6)]  # the gap before the next incident
    for _, host in sim.hosts:
        normal = _series(sim, before, metric, host)
        z_during = np.abs(_series(sim, during, metric, host) - normal.mean()) / normal.std()
        z_after = np.abs(_series(sim, after, metric, host) - normal.mean()) / normal.std()
        if host in hit:
            assert z_during.min() > 10, (kind, host, z_during)
        else:
            assert z_during.max() < 5, (kind, host, z_during)
        assert z_after.max() < 5, (kind, host, z_after)  # back to normal once it ends


def test_effect_sizes_match_their_descriptions(sim):
    cpu, lat, err, disk = sim.incidents_between(ORIGIN, ORIGIN + 480)
    assert all(95 <= v <= 99 for v in _series(sim, np.arange(cpu.start, cpu.end, 5.0), EFFECT[cpu.kind], cpu.host))
    host = f"{lat.service}-1"
    slow, usual = (_series(sim, [ts], EFFECT[lat.kind], host)[0] for ts in (lat.start + 30, lat.start - 30))
    assert 3.3 < slow / usual < 4.8  # ×4, give or take two 5% noise draws
    burst = _series(sim, np.arange(err.start, err.end, 5.0), EFFECT[err.kind], f"{err.service}-2")
    assert np.all((burst >= 0.15) & (burst <= 0.3))
    filling = _series(sim, np.arange(disk.start, disk.end, 10.0), EFFECT[disk.kind], disk.host)
    assert np.all(np.diff(filling) > 0.5)  # climbing about one point per 10 s


def test_a_long_disk_incident_fills_the_disk_to_100_and_cleanup_restores_it():
    sim = make(first_incident_after_s=0, incident_every_s=1200, incident_duration_s=1200)
    disk = sim.incidents_between(ORIGIN, ORIGIN + 4 * 1200)[3]
    assert disk.kind == "disk_filling"
    series = _series(sim, np.arange(disk.start, disk.end + 60, 60.0), "disk_used_percent", disk.host)
    assert np.all(np.diff(series[:-1]) >= 0) and series[-2] == 100.0
    normal = _series(sim, [disk.start - 60 * i for i in range(1, 10)], "disk_used_percent", disk.host)
    assert abs(series[-1] - normal.mean()) < 1  # after the end, the disk is back to its usual level


# -- dependencies and changes ---------------------------------------------------------------------


def test_each_service_calls_the_next_two_so_the_last_is_upstream_of_two():
    from aiops.demo.simulator import demo_topology

    assert demo_topology(("a", "b", "c", "d")) == {"a": ["b", "c"], "b": ["c", "d"], "c": ["d"]}
    assert demo_topology(("a",)) == {}


def _latency_on(service: str):
    """A fleet whose second incident (a latency regression) hits `service`, found by seed."""
    for seed in range(200):
        sim = make(seed=seed, incident_every_s=900)
        incident = sim.incidents_between(ORIGIN, ORIGIN + 1000)[1]
        if incident.service == service:
            return sim, incident
    raise AssertionError(f"no seed below 200 puts the regression on {service}")


def test_a_regression_slows_its_callers_after_the_lag_and_no_one_else():
    from aiops.demo.simulator import PROPAGATION_LAG_S

    sim, incident = _latency_on("payments")  # called by checkout only; search is its callee
    assert incident.kind == "latency_regression"
    before, early, later = incident.start - 30, incident.start + 1, incident.start + PROPAGATION_LAG_S + 5

    def ratio(host: str, ts: float) -> float:
        return float(_series(sim, [ts], "http_request_duration_seconds", host)[0]
                     / _series(sim, [before], "http_request_duration_seconds", host)[0])

    assert 3.3 < ratio("payments-1", early) < 4.8
    assert 0.8 < ratio("checkout-1", early) < 1.25  # not yet
    assert 2.0 < ratio("checkout-1", later) < 3.1  # ×2.5 once it has spread
    assert 0.8 < ratio("search-1", later) < 1.25  # a callee does not slow down


def test_a_deploy_precedes_each_regression_and_a_flag_flip_each_error_burst(sim):
    from aiops.demo.simulator import DEPLOY_LEAD_S

    changes = sim.changes_between(ORIGIN, ORIGIN + 480)
    incidents = {i.kind: i for i in sim.incidents_between(ORIGIN, ORIGIN + 480)}
    deploy, flag = changes
    lat, err = incidents["latency_regression"], incidents["error_burst"]
    assert (deploy["kind"], deploy["ts"], deploy["labels"]["service"]) == ("deploy", lat.start - DEPLOY_LEAD_S, lat.service)
    assert flag["kind"] == "feature_flag" and flag["labels"]["service"] == err.service and flag["ts"] < err.start
    # a window cut just after the deploy holds it once, and the next window not again
    assert sim.changes_between(ORIGIN, deploy["ts"] + 1) == [deploy]
    assert deploy not in sim.changes_between(deploy["ts"] + 1, ORIGIN + 480)
