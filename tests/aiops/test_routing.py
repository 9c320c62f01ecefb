"""Routing tree matching and notification timing, driven by an explicit clock."""

from __future__ import annotations

import pytest

from aiops.alerts import AlertEvent
from aiops.routing import Dispatcher, RoutingTree
from aiops.settings import Route

TREE = Route.model_validate({
    "receiver": "team-slack",
    "group_by": ["cluster"],
    "group_wait_s": 30, "group_interval_s": 300, "repeat_interval_s": 3600,
    "routes": [
        {"selector": '{service="db"}', "receiver": "dba-pager", "group_by": ["cluster", "service"]},
        {"selector": '{env="prod"}', "receiver": "prod-webhook", "continue": True, "group_wait_s": 0},
        {"selector": '{env="prod", team="payments"}', "receiver": "payments-pager"},
    ],
})


def _event(kind: str, alert_id: int, silenced_by: str | None = None, **labels: str) -> AlertEvent:
    return AlertEvent(kind, alert_id, f"fp{alert_id}", "critical", f"alert {alert_id}", silenced_by, False,
                      {"__name__": "latency", **labels}, 0.0)


def test_first_match_wins_continue_goes_on_and_the_root_catches_the_rest():
    tree = RoutingTree(TREE)
    assert [r.receiver for r in tree.match({"service": "db", "env": "prod"})] == ["dba-pager"]
    assert [r.receiver for r in tree.match({"env": "prod", "team": "payments"})] == ["prod-webhook", "payments-pager"]
    assert [r.receiver for r in tree.match({"env": "dev"})] == ["team-slack"]
    db = tree.match({"service": "db"})[0]
    assert (db.group_wait_s, db.repeat_interval_s, db.group_by) == (30, 3600, ("cluster", "service"))  # inherited


def test_group_wait_then_group_interval_for_changes_then_repeat_then_resolved():
    dispatcher = Dispatcher(RoutingTree(TREE))
    dispatcher.observe(_event("opened", 1, cluster="eu", env="dev"), now=0)
    dispatcher.observe(_event("opened", 2, cluster="eu", env="dev"), now=10)
    assert dispatcher.due(29) == []
    first = dispatcher.due(30)
    assert [(n.receiver, n.reason, [a.alert_id for a in n.firing]) for n in first] == [("team-slack", "first", [1, 2])]
    dispatcher.observe(_event("updated", 1, cluster="eu", env="dev"), now=40)  # no change in membership
    dispatcher.observe(_event("opened", 3, cluster="eu", env="dev"), now=50)
    assert dispatcher.due(329) == []
    assert [n.reason for n in dispatcher.due(330)] == ["changed"]
    assert dispatcher.due(3000) == []
    assert [n.reason for n in dispatcher.due(3930)] == ["repeat"]
    for alert_id in (1, 2, 3):
        dispatcher.observe(_event("resolved", alert_id, cluster="eu", env="dev"), now=4000)
    done = dispatcher.due(4230)
    assert [(n.reason, len(n.resolved)) for n in done] == [("resolved", 3)]
    assert dispatcher.due(9000) == []  # the group is gone


def test_groups_split_by_their_labels_and_muted_alerts_are_not_sent():
    dispatcher = Dispatcher(RoutingTree(TREE))
    dispatcher.observe(_event("opened", 1, cluster="eu", env="dev"), now=0)
    dispatcher.observe(_event("opened", 2, cluster="us", env="dev"), now=0)
    dispatcher.observe(_event("opened", 3, "api:7", cluster="ap", env="dev"), now=0)
    sent = dispatcher.due(30)
    assert sorted(n.group["cluster"] for n in sent) == ["eu", "us"]


def test_prod_alerts_reach_both_receivers_and_one_has_no_wait():
    dispatcher = Dispatcher(RoutingTree(TREE))
    dispatcher.observe(_event("opened", 1, cluster="eu", env="prod", team="payments"), now=0)
    assert [n.receiver for n in dispatcher.due(0)] == ["prod-webhook"]
    assert [n.receiver for n in dispatcher.due(30)] == ["payments-pager"]


def test_the_root_needs_a_receiver():
    with pytest.raises(ValueError, match="root route needs a receiver"):
        RoutingTree(Route())
