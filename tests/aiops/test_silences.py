"""Silences: created, listed, expired through the API and the settings file; muted alerts are kept."""

from __future__ import annotations

import time

import numpy as np
import pytest
from fastapi.testclient import TestClient

from aiops.api import create_app
from aiops.config_loader import ConfigError, load_settings
from aiops.service import Service


def _service(store_url, tmp_path, **env) -> Service:
    return Service(load_settings(None, environ={
        "AIOPS_DATA_DIR": str(tmp_path), "AIOPS_STORE__URL": store_url,
        "AIOPS_DETECTION__DEFAULT__DETECTOR": "ewma_zscore", **env}))


def _spike(client, host: str, start: float) -> None:
    rng = np.random.default_rng(1)
    points = [{"name": "cpu", "labels": {"host": host, "cluster": "eu-1"}, "ts": start + 10 * i,
               "value": float(50 + rng.normal(0, 1))} for i in range(60)]
    points.append({"name": "cpu", "labels": {"host": host, "cluster": "eu-1"}, "ts": start + 700, "value": 99.0})
    client.post("/api/v1/metrics", json=points)


def _alerts(client, n: int) -> list[dict]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        items = client.get("/api/v1/alerts").json()["items"]
        if len(items) >= n:
            return items
        time.sleep(0.05)
    return client.get("/api/v1/alerts").json()["items"]


def test_a_silenced_alert_is_recorded_but_marked_and_expiry_lifts_it(store_url, tmp_path):
    with TestClient(create_app(_service(store_url, tmp_path))) as client:
        created = client.post("/api/v1/silences", json={
            "selector": '{host="a"}', "duration_s": 3600, "comment": "kernel upgrade", "created_by": "alice"})
        assert created.status_code == 201
        silence = created.json()
        start = time.time() - 3600
        _spike(client, "a", start)
        _spike(client, "b", start)
        alerts = {a["labels"]["host"]: a for a in _alerts(client, 2)}
        assert alerts["a"]["silenced_by"] == f"api:{silence['id']}"  # recorded, not lost
        assert alerts["b"]["silenced_by"] is None
        assert [s["id"] for s in client.get("/api/v1/silences", params={"state": "active"}).json()["items"]] == [silence["id"]]

        expired = client.delete(f"/api/v1/silences/{silence['id']}", params={"by": "bob"})
        assert expired.status_code == 200 and expired.json()["ends_at"] <= time.time()
        assert client.get("/api/v1/silences", params={"state": "active"}).json()["items"] == []
        assert len(client.get("/api/v1/silences", params={"state": "expired"}).json()["items"]) == 1
        assert client.delete("/api/v1/silences/9999").status_code == 404


def test_silences_survive_a_restart(store_url, tmp_path):
    with TestClient(create_app(_service(store_url, tmp_path))) as client:
        client.post("/api/v1/silences", json={"selector": '{host="a"}', "duration_s": 3600, "comment": "c", "created_by": "x"})
    service = _service(store_url, tmp_path)
    with TestClient(create_app(service)):
        assert service.silences.match({"__name__": "cpu", "host": "a"}, time.time()) is not None


def test_silences_from_the_settings_file(store_url, tmp_path):
    service = _service(store_url, tmp_path, AIOPS_ALERTING__SILENCES=(
        '[{selector: "{cluster=\\"eu-1\\"}", starts_at: "2020-01-01T00:00:00Z", ends_at: "2100-01-01T00:00:00Z", '
        'comment: "migration"}]'))
    with TestClient(create_app(service)) as client:
        _spike(client, "c", time.time() - 3600)
        assert _alerts(client, 1)[0]["silenced_by"] == "config:0"


@pytest.mark.parametrize(
    "body",
    [
        {"selector": "{}", "duration_s": 60, "comment": "c", "created_by": "x"},
        {"selector": '{host="a"', "duration_s": 60, "comment": "c", "created_by": "x"},
        {"selector": '{host="a"}', "comment": "c", "created_by": "x"},
        {"selector": '{host="a"}', "duration_s": 60, "ends_at": 2e9, "comment": "c", "created_by": "x"},
        {"selector": '{host="a"}', "ends_at": 1000, "comment": "c", "created_by": "x"},
        {"selector": '{host="a"}', "duration_s": 60, "comment": "", "created_by": "x"},
    ],
)
def test_bad_silences_get_422(store_url, tmp_path, body):
    with TestClient(create_app(_service(store_url, tmp_path))) as client:
        response = client.post("/api/v1/silences", json=body)
        assert response.status_code == 422 and response.json()["detail"]


def test_a_config_silence_that_ends_before_it_starts_is_a_config_error(tmp_path):
    path = tmp_path / "aiops.yaml"
    path.write_text("alerting:\n  silences:\n    - selector: '{a=\"b\"}'\n      starts_at: 2030-01-02T00:00:00Z\n"
                    "      ends_at: 2030-01-01T00:00:00Z\n      comment: x\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ={})
    assert err.value.issues[0].path == "alerting.silences.0" and err.value.issues[0].line == 3


def test_maintenance_windows_recur_on_their_weekdays_and_run_past_midnight():
    from datetime import datetime, timezone

    from aiops.settings import MaintenanceWindow
    from aiops.silences import SilenceBook

    book = SilenceBook(maintenance=[
        MaintenanceWindow(name="patch", selector='{cluster="eu-1"}', weekdays=["sun"], start="23:00", duration_s=3 * 3600),
    ])

    def at(text):
        return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()

    eu = {"__name__": "cpu", "cluster": "eu-1"}
    assert book.match(eu, at("2026-11-29T23:30:00")) == "maintenance:patch"  # a Sunday
    assert book.match(eu, at("2026-11-30T01:59:00")) == "maintenance:patch"  # past midnight, into Monday
    assert book.match(eu, at("2026-11-30T02:00:00")) is None
    assert book.match(eu, at("2026-11-28T23:30:00")) is None  # a Saturday
    assert book.match({"__name__": "cpu", "cluster": "us-1"}, at("2026-11-29T23:30:00")) is None
    assert book.match(eu, at("2026-12-06T23:00:00")) == "maintenance:patch"  # every week
