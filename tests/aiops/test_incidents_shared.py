"""Incidents shared by several processes (Kafka workers, the API): the store decides, not each cache.

Two `IncidentManager`s on one store stand for two workers: alerts of one component they handle join one
incident, it resolves only when every alert of it has, and an escalation step is paged once and not
after another process acknowledged the incident.
"""

from __future__ import annotations

from aiops.alerts import AlertEvent
from aiops.escalation import Escalations
from aiops.incidents import IncidentManager
from aiops.settings import EscalationPolicy, EscalationStep, IncidentSettings

SETTINGS = IncidentSettings(group_by=[], topology={"checkout": ["payments"]})
POLICY = Escalations([EscalationPolicy(name="shop", steps=[EscalationStep(receiver="oncall", wait_s=60),
                                                           EscalationStep(receiver="lead", wait_s=60)])])


def _event(kind: str, alert_id: int, service: str) -> AlertEvent:
    return AlertEvent(kind, alert_id, f"fp{alert_id}", "critical", f"{service} latency", labels={"service": service})


def _workers(store) -> tuple[IncidentManager, IncidentManager]:
    managers = IncidentManager(SETTINGS, POLICY), IncidentManager(SETTINGS, POLICY)
    with store.begin() as conn:
        for m in managers:
            m.load(conn)  # both start with the store's (empty) view, as workers do on assignment
    return managers


def _incidents(store) -> list[dict]:
    from sqlalchemy import select

    from aiops.store.schema import incidents

    with store.begin() as conn:
        return [dict(r._mapping) for r in conn.execute(select(incidents).order_by(incidents.c.id))]


def test_alerts_of_one_component_on_two_workers_join_one_incident_that_resolves_with_the_last(store):
    a, b = _workers(store)
    with store.begin() as conn:
        assert len(a.apply(conn, [_event("opened", 1, "payments")], 100.0)) == 1
    with store.begin() as conn:
        assert b.apply(conn, [_event("opened", 2, "checkout")], 110.0) == []  # joins a's incident
    (incident,) = _incidents(store)
    assert incident["alert_count"] == 2 and incident["services"] == ["checkout", "payments"]
    with store.begin() as conn:
        a.apply(conn, [_event("resolved", 1, "payments")], 120.0)
    assert _incidents(store)[0]["state"] == "open"  # b's alert still fires
    with store.begin() as conn:
        b.apply(conn, [_event("resolved", 2, "checkout")], 130.0)
    assert _incidents(store)[0]["state"] == "resolved"


def test_an_escalation_step_is_paged_once_and_not_after_another_process_acknowledged(store):
    a, b = _workers(store)
    with store.begin() as conn:
        (incident_id,) = a.apply(conn, [_event("opened", 1, "payments")], 100.0)
    with store.begin() as conn:
        b.apply(conn, [_event("opened", 2, "checkout")], 101.0)  # b now holds the incident too
    with store.begin() as conn:
        first = a.due_pages(conn, 102.0)
    with store.begin() as conn:
        again = b.due_pages(conn, 102.0)  # b's cache says step -1 is due: the store says a took it
    assert [(p.incident_id, p.receiver) for p in first] == [(incident_id, "oncall")] and again == []
    api = IncidentManager(SETTINGS, POLICY)
    with store.begin() as conn:
        api.load(conn)
        api.acknowledge(conn, incident_id, 130.0, actor="alice")
    with store.begin() as conn:
        late = a.due_pages(conn, 200.0) + b.due_pages(conn, 200.0)  # the next step was due at 162
    assert late == [] and _incidents(store)[0]["state"] == "acknowledged"
