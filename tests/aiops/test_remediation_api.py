"""Remediation through the running service: an alert heals end to end; approval, rejection,
cancellation, manual dry runs, validation and the kill switch through the API; the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import yaml
from emulators.http_receiver import HttpReceiver
from fastapi.testclient import TestClient
from helpers import wait_for

from aiops.api import create_app
from aiops.config_loader import load_settings
from aiops.service import Service


def _config(tmp_path, store_url: str, fix_url: str) -> str:
    step = {"name": "restart", "action": "http", "with": {"url": fix_url + "/restart/{{ labels.service }}"}}
    config = {
        "data_dir": str(tmp_path),
        "store": {"url": store_url},
        "detection": {"default": {"detector": "ewma_zscore"}},
        "alerting": {"resolve_after_s": 600, "incidents": {"group_by": ["service"]}},
        "remediation": {"poll_s": 0.2, "runbooks": [
            {"name": "heal-payments", "match": {"selector": '{service="payments"}'}, "steps": [step],
             "verify": {"max_score": 0.5, "for_s": 30, "deadline_s": 60}},
            {"name": "heal-search", "match": {"selector": '{service="search"}'}, "steps": [step], "verify": None,
             "guards": {"approval": {"approvers": ["bob"]}}},
        ]},
    }
    path = tmp_path / "aiops.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def _points(service: str, start: float, n: int, level: float = 0.2, seed: int = 2) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{"name": "latency", "labels": {"service": service}, "ts": start + 10 * i,
             "value": float(level + rng.normal(0, 0.01))} for i in range(n)]


def _execution(client, **q) -> list[dict]:
    return client.get("/api/v1/executions", params=q).json()["items"]


def test_an_alert_is_healed_end_to_end_and_its_incident_resolved(store_url, tmp_path):
    with HttpReceiver() as fix:
        path = _config(tmp_path, store_url, fix.url)
        with TestClient(create_app(Service(load_settings(path), config_path=path))) as client:
            start = time.time() - 1200
            client.post("/api/v1/metrics", json=_points("payments", start, 60))
            client.post("/api/v1/metrics", json=[{"name": "latency", "labels": {"service": "payments"},
                                                  "ts": start + 600, "value": 2.0}])
            [ex] = wait_for(lambda: _execution(client, runbook="heal-payments"), lambda e: e and e[0]["state"] == "verifying")
            assert ex["state"] == "verifying" and fix.requests[0].path == "/restart/payments"
            incident = client.get(f"/api/v1/incidents/{ex['incident_id']}").json()
            assert incident["state"] == "remediating"
            time.sleep(1.5)  # the pipeline picks up new watches once a second; points before that do not count
            client.post("/api/v1/metrics", json=_points("payments", start + 610, 5, seed=3))  # 40 s of normal after the fix
            done = wait_for(lambda: client.get(f"/api/v1/executions/{ex['id']}").json(), lambda e: e["state"] == "succeeded")
            assert done["state"] == "succeeded" and done["reason"].startswith("verified: normal for 40 s")
            assert done["watches"] == [] and done["steps"][0]["outputs"]["status"] == 200
            incident = wait_for(lambda: client.get(f"/api/v1/incidents/{ex['incident_id']}").json(),
                                lambda i: i["state"] == "resolved")
            kinds = [(t["actor"], t["kind"]) for t in incident["timeline"]]
            assert kinds[1:] == [("runbook:heal-payments", k) for k in
                                 ("remediation_planned", "remediating", "resolved", "remediation_succeeded")]
            audit_actions = [e["detail"].get("reason", "") for e in incident["timeline"] if e["kind"] == "resolved"]
            assert "healed by runbook heal-payments" in audit_actions[0]


def test_approval_rejection_cancellation_dry_runs_validation_and_kill_switch(store_url, tmp_path):
    with HttpReceiver() as fix:
        path = _config(tmp_path, store_url, fix.url)
        with TestClient(create_app(Service(load_settings(path), config_path=path))) as client:
            start = time.time() - 1200
            client.post("/api/v1/metrics", json=_points("search", start, 60))
            client.post("/api/v1/metrics", json=[{"name": "latency", "labels": {"service": "search"}, "ts": start + 600,
                                                  "value": 2.0}])
            [waiting] = wait_for(lambda: _execution(client, state="awaiting_approval"), bool)
            assert waiting["reason"] == "approval required (by bob)"
            denied = client.post(f"/api/v1/executions/{waiting['id']}/approve", json={"by": "mallory"})
            assert denied.status_code == 403 and "approvers: bob" in denied.json()["detail"]
            assert client.post(f"/api/v1/executions/{waiting['id']}/approve", json={"by": "bob"}).json()["state"] == "pending"
            wait_for(lambda: client.get(f"/api/v1/executions/{waiting['id']}").json()["state"], lambda s: s == "succeeded")
            assert client.post(f"/api/v1/executions/{waiting['id']}/cancel", json={"by": "bob"}).status_code == 409

            alert_id = waiting["alert_id"]
            # by hand, with the target busy: refused with the guard's reason; then a dry run once it is free
            dry = client.post("/api/v1/runbooks/heal-search/run", json={"by": "carol", "alert_id": alert_id, "dry_run": True})
            assert dry.status_code == 201, dry.json()
            dry_done = wait_for(lambda: client.get(f"/api/v1/executions/{dry.json()['id']}").json(),
                                lambda e: e["state"] == "succeeded")
            assert dry_done["dry_run"] and dry_done["steps"][0]["state"] == "dry_run" and len(fix.requests) == 1

            # kill switch: a new execution waits; cancelling it ends it
            assert client.put("/api/v1/remediation/kill-switch", json={"by": "ops", "engaged": True,
                                                                       "reason": "game day"}).json()["engaged"]
            again = client.post("/api/v1/runbooks/heal-search/run", json={"by": "carol", "alert_id": alert_id})
            assert again.status_code == 409 and "kill switch engaged (ops: game day)" in again.json()["detail"]
            client.put("/api/v1/remediation/kill-switch", json={"by": "ops", "engaged": False, "reason": "done"})
            assert client.get("/api/v1/remediation/kill-switch").json() == {"engaged": False, "reason": None}
            pending = client.post("/api/v1/runbooks/heal-search/run", json={"by": "carol", "alert_id": alert_id}).json()
            assert pending["state"] == "awaiting_approval"
            rejected = client.post(f"/api/v1/executions/{pending['id']}/reject", json={"by": "bob", "reason": "not now"})
            assert rejected.json()["state"] == "cancelled" and rejected.json()["reason"] == "rejected by bob: not now"

            assert client.post("/api/v1/runbooks/nope/run", json={"by": "x", "alert_id": alert_id}).status_code == 404
            assert client.post("/api/v1/runbooks/heal-search/run", json={"by": "x", "alert_id": 999}).status_code == 404
            listed = client.get("/api/v1/runbooks").json()["items"]
            assert [r["name"] for r in listed] == ["heal-payments", "heal-search"]
            assert client.get("/api/v1/runbooks/heal-search").json()["guards"]["approval"]["approvers"] == ["bob"]
            ok = client.post("/api/v1/runbooks/validate", json={"yaml": "runbooks:\n  - name: a\n    steps:\n"
                                                                       "      - {name: s, action: wait, with: {seconds: 1}}\n"})
            assert ok.json() == {"valid": True, "runbooks": ["a"]}
            bad = client.post("/api/v1/runbooks/validate", json={"yaml": "runbooks:\n  - name: a\n    steps:\n"
                                                                        "      - {name: s, action: wait}\n"})
            assert bad.status_code == 422 and "<request>:4: runbooks.0.steps.0" in bad.json()["detail"][0]


def test_cli_validates_runbook_files_and_dry_runs_a_runbook(store_url, tmp_path):
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text("runbooks:\n  - name: a\n    steps:\n      - {name: s, action: http, with: {url: 'http://x/{{ labels.host }}'}}\n")
    bad.write_text("runbooks:\n  - name: a\n    steps:\n      - {name: s, action: jenkins}\n")
    run = lambda *a: subprocess.run([sys.executable, "-m", "aiops", *a], capture_output=True, text=True, timeout=60)  # noqa: E731
    assert run("runbook", "validate", str(good)).stdout.strip() == f"{good}: valid (a)"
    failed = run("runbook", "validate", str(bad))
    assert failed.returncode == 1 and f"{bad}:4: runbooks.0.steps.0: Value error, step 's': action jenkins needs with.job" in failed.stderr

    with HttpReceiver() as fix:
        path = _config(tmp_path, store_url, fix.url)
        with TestClient(create_app(Service(load_settings(path), config_path=path))) as client:
            start = time.time() - 1200
            client.post("/api/v1/metrics", json=_points("other", start, 60))
            client.post("/api/v1/metrics", json=[{"name": "latency", "labels": {"service": "other"}, "ts": start + 600,
                                                  "value": 2.0}])
            [alert] = wait_for(lambda: client.get("/api/v1/alerts").json()["items"], bool)
        out = run("runbook", "run", "heal-payments", "--alert", str(alert["id"]), "--dry-run", "--config", path)
        assert out.returncode == 0, out.stderr
        story = json.loads(out.stdout)
        assert story["state"] == "succeeded" and story["dry_run"] and story["requested_by"].startswith("cli:")
        assert story["steps"][0]["outputs"]["would"]["with"]["url"] == fix.url + "/restart/other" and fix.requests == []
