"""The service map: traced edges merged with the configured map, and incident grouping following it."""

from __future__ import annotations

import pytest

from aiops.incidents import IncidentManager
from aiops.settings import IncidentSettings
from aiops.topology import ServiceMap


def test_traced_callers_replace_their_configured_callees_others_keep_theirs():
    services = ServiceMap({"checkout": ["legacy-db"], "search": ["catalog"]})
    before = services.adjacency()
    assert before == {"checkout": ["legacy-db"], "search": ["catalog"]}
    assert services.observe(("checkout", "payments"), calls=10, errors=1, first_seen=100.0, last_seen=160.0)
    assert not services.observe(("checkout", "payments"), calls=5, errors=0, first_seen=170.0, last_seen=180.0)
    services.interval(("checkout", "payments"), rate=0.5, error_ratio=0.0, p95_ms=float("nan"))
    after = services.adjacency()
    assert after == {"checkout": ["payments"], "search": ["catalog"]} and after is not before
    assert services.adjacency() is after  # unchanged: the same object
    edges = services.edges()
    assert [(e.caller, e.callee, e.source) for e in edges] == [("checkout", "payments", "traced"), ("search", "catalog", "config")]
    traced = edges[0]
    assert (traced.calls, traced.errors, traced.first_seen, traced.last_seen) == (15, 1, 100.0, 180.0)
    assert (traced.call_rate, traced.error_ratio, traced.p95_ms) == (0.5, 0.0, None)
    services.configure({"search": ["index"]})
    assert services.adjacency() == {"checkout": ["payments"], "search": ["index"]}


def test_state_round_trip_and_a_foreign_version_is_refused():
    services = ServiceMap()
    services.observe(("a", "b"), calls=3, errors=0, first_seen=1.0, last_seen=2.0)
    restored = ServiceMap({"x": ["y"]})
    restored.load_state_dict(services.state_dict())
    assert restored.adjacency() == {"a": ["b"], "x": ["y"]} and restored.known("a", "b")
    with pytest.raises(ValueError, match="version 99"):
        restored.load_state_dict({"version": 99, "edges": []})


def test_incident_groups_follow_the_map_as_it_changes():
    services = ServiceMap()
    manager = IncidentManager(IncidentSettings(group_by=[]), topology=services.adjacency)
    assert manager.group_key({"service": "checkout"}) != manager.group_key({"service": "payments"})
    services.observe(("checkout", "payments"), calls=1, errors=0, first_seen=1.0, last_seen=1.0)
    assert manager.group_key({"service": "checkout"}) == manager.group_key({"service": "payments"})
    assert manager.topology() == {"checkout": ["payments"]}
    configured = IncidentManager(IncidentSettings(group_by=[], topology={"a": ["b"]}))  # no provider: the settings' map
    assert configured.group_key({"service": "a"}) == configured.group_key({"service": "b"})
