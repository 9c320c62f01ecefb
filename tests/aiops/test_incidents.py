"""Incidents: grouping by shared labels and the dependency map, likely-cause changes, lifecycle."""

from __future__ import annotations

import json
import time

from fastapi.testclient import TestClient
from helpers import post_latency_spikes, wait_for

from aiops.api import create_app
from aiops.config_loader import load_settings
from aiops.incidents import components_of, rank_origins
from aiops.service import Service

TOPOLOGY = json.dumps({"checkout": ["payments", "inventory"]})


def _service(store_url, tmp_path, **env) -> Service:
    return Service(load_settings(None, environ={
        "AIOPS_DATA_DIR": str(tmp_path), "AIOPS_STORE__URL": store_url,
        "AIOPS_DETECTION__DEFAULT__DETECTOR": "ewma_zscore",
        "AIOPS_ALERTING__INCIDENTS__GROUP_BY": "[]",
        "AIOPS_ALERTING__INCIDENTS__TOPOLOGY": TOPOLOGY,
        "AIOPS_ALERTING__RESOLVE_AFTER_S": "1",
        **env}))


def test_components_of_the_dependency_map():
    parts = components_of({"checkout": ["payments", "inventory"], "search": ["catalog"], "payments": ["db"]})
    assert parts["db"] == parts["checkout"] == parts["inventory"] and parts["search"] == parts["catalog"] != parts["db"]


def test_connected_services_share_one_incident_with_the_preceding_deploy_as_likely_cause(store_url, tmp_path):
    with TestClient(create_app(_service(store_url, tmp_path))) as client:
        deploy = client.post("/api/v1/events", json={"kind": "deploy", "title": "payments v9", "labels": {"service": "payments"},
                                                     "ts": time.time() - 300}).json()["ids"][0]
        client.post("/api/v1/events", json={"kind": "deploy", "title": "search v2", "labels": {"service": "search"},
                                            "ts": time.time() - 200})
        post_latency_spikes(client, ["payments", "inventory", "checkout", "search"], time.time() - 720)  # spikes 20 s ago, after the deploys
        items = wait_for(lambda: client.get("/api/v1/incidents").json()["items"], lambda i: sum(x["alert_count"] for x in i) == 4)
        assert len(items) == 2  # payments+inventory+checkout together, search apart
        shop = next(i for i in items if "checkout" in i["services"])
        listed = lambda **q: [i["id"] for i in client.get("/api/v1/incidents", params=q).json()["items"]]  # noqa: E731
        assert listed(affects="payments") == [shop["id"]] and listed(affects="pay") == [] and listed(affects="%") == []
        assert listed(start=shop["opened_at"] + 3600) == [] and len(listed(end=time.time() + 60)) == 2
        assert client.get("/api/v1/incidents", params={"start": "yesterday"}).status_code == 422
        assert shop["alert_count"] == 3 and shop["services"] == ["checkout", "inventory", "payments"]
        detail = client.get(f"/api/v1/incidents/{shop['id']}").json()
        assert [c["id"] for c in detail["likely_causes"]] == [deploy]
        assert [t["kind"] for t in detail["timeline"]] == ["opened", "alert_added", "alert_added"]
        assert len(detail["alerts"]) == 3
        assert detail["origins"][0]["service"] in ("payments", "inventory")  # dependencies of checkout
        assert detail["origins"][-1]["service"] == "checkout" and detail["origins"][-1]["dependents"] == []

        # lifecycle through the API
        ack = client.post(f"/api/v1/incidents/{shop['id']}/acknowledge", json={"by": "alice"}).json()
        assert ack["state"] == "acknowledged" and ack["acknowledged_by"] == "alice"
        client.post(f"/api/v1/incidents/{shop['id']}/comments", json={"by": "alice", "text": "rolling back payments"})
        done = client.post(f"/api/v1/incidents/{shop['id']}/resolve", json={"by": "alice", "comment": "rolled back"}).json()
        assert done["state"] == "resolved" and done["resolved_at"] is not None
        kinds = [t["kind"] for t in client.get(f"/api/v1/incidents/{shop['id']}").json()["timeline"]]
        assert kinds[-3:] == ["acknowledged", "comment", "resolved"]
        assert client.post(f"/api/v1/incidents/{shop['id']}/acknowledge", json={"by": "bob"}).status_code == 409
        assert client.post(f"/api/v1/incidents/{shop['id']}/remediate", json={"by": "bob"}).status_code == 409
        assert client.get("/api/v1/incidents/9999").status_code == 404
        assert client.post("/api/v1/incidents/9999/resolve", json={"by": "bob"}).status_code == 404
        assert client.post(f"/api/v1/incidents/{shop['id']}/comments", json={"by": ""}).status_code == 422


def test_an_incident_resolves_by_itself_when_its_alerts_do(store_url, tmp_path):
    with TestClient(create_app(_service(store_url, tmp_path))) as client:
        post_latency_spikes(client, ["search"], time.time() - 3600)
        resolved = wait_for(lambda: client.get("/api/v1/incidents", params={"state": "resolved"}).json()["items"], bool)
        assert len(resolved) == 1
        timeline = client.get(f"/api/v1/incidents/{resolved[0]['id']}").json()["timeline"]
        assert [t["kind"] for t in timeline] == ["opened", "alert_resolved", "resolved"]
        assert timeline[-1]["actor"] == "pipeline"


def test_origin_ranking_prefers_the_dependency_then_the_earliest_then_the_strongest():
    def alert(service, onset, score):
        return {"labels": {"service": service}, "first_seen": onset, "details": {"score": score}}

    topology = {"checkout": ["payments", "inventory"], "payments": ["db"]}
    ranked = rank_origins([alert("checkout", 100, 0.9), alert("payments", 110, 0.7), alert("db", 130, 0.6),
                           alert("inventory", 105, 0.8)], topology)
    assert [r["service"] for r in ranked] == ["db", "inventory", "payments", "checkout"]  # ties: earliest first
    assert ranked[0]["dependents"] == ["checkout", "payments"] and "depend on it" in ranked[0]["reasons"][0]
    assert ranked[3]["reasons"] == ["its anomalies started first", "strongest deviation (score 0.90)"]
    flat = rank_origins([alert("a", 200, 0.5), alert("b", 100, 0.4)], {})
    assert [r["service"] for r in flat] == ["b", "a"]
