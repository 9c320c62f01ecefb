"""The HTTP API end to end, on SQLite and PostgreSQL: ingest, detection, alerts, bad input, metrics."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient
from helpers import wait_for

from aiops.api import create_app
from aiops.config_loader import load_settings
from aiops.service import Service
from detectors import MetricBatch


def _service(store_url: str, tmp_path, **env: str) -> Service:
    # the API's mechanics are under test here, with the EWMA detector's short warm-up
    environ = {
        "AIOPS_DATA_DIR": str(tmp_path),
        "AIOPS_STORE__URL": store_url,
        "AIOPS_DETECTION__DEFAULT__DETECTOR": "ewma_zscore",
        **env,
    }
    return Service(load_settings(None, environ=environ))


@pytest.fixture
def client(store_url, tmp_path) -> Iterator[TestClient]:
    with TestClient(create_app(_service(store_url, tmp_path, AIOPS_ALERTING__RESOLVE_AFTER_S="0.5"))) as c:
        yield c


def _series(name: str, host: str, values, start: float) -> list[dict]:
    return [
        {"name": name, "labels": {"host": host, "service": "api"}, "ts": start + 10 * i, "value": float(v)}
        for i, v in enumerate(values)
    ]


def test_health_readiness_and_openapi(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/v1/metrics", "/api/v1/anomalies", "/api/v1/alerts", "/healthz", "/readyz", "/metrics"} <= set(paths)
    assert {"/v1/metrics", "/v1/logs", "/v1/traces", "/api/v1/topology"} <= set(paths)


def test_not_ready_before_start(store_url, tmp_path):
    client = TestClient(create_app(_service(store_url, tmp_path)))  # no `with`: lifespan never ran
    response = client.get("/readyz")
    assert response.status_code == 503 and response.json()["ready"] is False


def test_point_far_outside_band_becomes_one_deduplicated_alert(client):
    rng = np.random.default_rng(3)
    start = time.time() - 3600
    normal = _series("cpu", "a", 50 + rng.normal(0, 1, 100), start) + _series("cpu", "b", 50 + rng.normal(0, 1, 100), start)
    response = client.post("/api/v1/metrics", json={"points": normal})
    assert response.status_code == 202 and response.json() == {"accepted": 200, "rejected": 0, "errors": []}
    spikes = _series("cpu", "a", [95, 97, 96], start + 1000)
    assert client.post("/api/v1/metrics", json=spikes).json()["accepted"] == 3

    alerts = wait_for(lambda: client.get("/api/v1/alerts").json()["items"], lambda a: a and a[0]["count"] >= 1)
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert["state"] == "firing" and alert["labels"] == {"__name__": "cpu", "host": "a", "service": "api"}
    assert alert["count"] >= 1 and alert["details"]["detector"] == "ewma_zscore"
    anomalies = client.get("/api/v1/anomalies", params={"label": "host=a"}).json()["items"]
    assert anomalies and all(a["alert_id"] == alert["id"] for a in anomalies)
    first = anomalies[-1]
    assert first["value"] == 95 and first["lower"] < first["expected"] < first["upper"] < 95
    assert client.get("/api/v1/anomalies", params={"label": "host=b"}).json()["items"] == []

    resolved = wait_for(lambda: client.get("/api/v1/alerts", params={"state": "resolved"}).json()["items"], bool)
    assert [a["id"] for a in resolved] == [alert["id"]] and resolved[0]["resolved_at"] is not None


def test_bad_input_cases(client):
    assert client.post("/api/v1/metrics", content=b"{not json").status_code == 400
    shape = client.post("/api/v1/metrics", json={"pts": []})
    assert shape.status_code == 422 and shape.json()["field"] == "body.points"
    mixed = client.post(
        "/api/v1/metrics",
        content=b'[{"name":"m","value":1},{"name":"m","value":NaN},{"name":"m","value":"x"},'
        b'{"name":"m","value":2,"ts":9999999999},{"name":"m","value":Infinity}]',
    )
    assert mixed.status_code == 202
    body = mixed.json()
    assert body["accepted"] == 1 and body["rejected"] == 4
    assert [(e["index"], e["field"]) for e in body["errors"]] == [(1, "value"), (2, "value"), (3, "ts"), (4, "value")]


def test_body_over_limit_is_413(store_url, tmp_path):
    with TestClient(create_app(_service(store_url, tmp_path, AIOPS_SERVER__MAX_BODY_BYTES="1024"))) as client:
        big = [{"name": "m", "value": 1.0}] * 100
        response = client.post("/api/v1/metrics", json=big)
        assert response.status_code == 413 and "1024" in response.json()["detail"]
        assert client.post("/api/v1/metrics", json=big[:3]).status_code == 202  # the service goes on


def test_saturated_pipeline_answers_503_with_retry_after(store_url, tmp_path):
    service = _service(store_url, tmp_path, AIOPS_BUS__QUEUE_BATCHES="1", AIOPS_SERVER__INGEST_WAIT_S="0.05")
    with TestClient(create_app(service)) as client:
        service.pipeline.stop(drain=False)
        assert client.post("/api/v1/metrics", json=[{"name": "m", "value": 1}]).status_code == 202
        full = client.post("/api/v1/metrics", json=[{"name": "m", "value": 2}])
        assert full.status_code == 503 and full.headers["retry-after"] == "1"
        service.pipeline.start()
        ok = wait_for(lambda: client.post("/api/v1/metrics", json=[{"name": "m", "value": 3}]), lambda r: r.status_code == 202)
        assert ok.status_code == 202


def test_list_filters_pagination_and_query_errors(client):
    start = time.time() - 7200
    rng = np.random.default_rng(5)
    points = []
    for host in ("a", "b", "c"):
        points += _series("lat", host, np.r_[10 + rng.normal(0, 0.1, 60), [50.0, 60.0, 70.0, 80.0]], start)
    client.post("/api/v1/metrics", json=points)
    wait_for(lambda: client.get("/api/v1/anomalies").json()["items"], lambda a: len(a) >= 6)

    everything = client.get("/api/v1/anomalies", params={"limit": 1000}).json()["items"]
    pages, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/v1/anomalies", params=params).json()
        pages += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [a["id"] for a in pages] == [a["id"] for a in everything]
    only_b = client.get("/api/v1/anomalies", params=[("label", "host=b"), ("label", "service=api")]).json()["items"]
    assert only_b and {a["labels"]["host"] for a in only_b} == {"b"}
    late = max(a["ts"] for a in everything)
    assert all(a["ts"] >= late for a in client.get("/api/v1/anomalies", params={"start": late}).json()["items"])
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start - 60))
    assert client.get("/api/v1/anomalies", params={"end": iso}).json()["items"] == []
    assert len(client.get("/api/v1/alerts", params={"state": "firing"}).json()["items"]) == 3

    for params in ({"cursor": "garbage"}, {"label": "nokey"}, {"limit": 0}, {"severity": "loud"}, {"start": "soon"}):
        bad = client.get("/api/v1/anomalies", params=params)
        assert bad.status_code == 422, params
        assert bad.json()["detail"]


def test_metrics_endpoint_shows_counters_moving(client):
    def sample(name: str) -> float:
        for line in client.get("/metrics").text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
        return 0.0

    before = sample("aiops_ingest_points_accepted_total")
    client.post("/api/v1/metrics", json=[{"name": "m", "value": 1}, {"name": "m", "value": "bad"}])
    assert sample("aiops_ingest_points_accepted_total") == before + 1
    text = client.get("/metrics").text
    assert 'aiops_ingest_points_rejected_total{field="value"} 1.0' in text
    assert 'aiops_bus_queue_depth{topic="metrics"}' in text
    assert wait_for(lambda: sample("aiops_pipeline_points_total"), lambda v: v >= 1) >= 1
    assert "aiops_pipeline_latency_seconds_bucket" in client.get("/metrics").text


def test_config_reload_applies_detection_live_and_rejects_a_bad_file(tmp_path, store_url, monkeypatch):
    config = tmp_path / "aiops.yaml"
    config.write_text("alerting:\n  resolve_after_s: 300\n")
    monkeypatch.setenv("AIOPS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("AIOPS_STORE__URL", store_url)
    service = Service(load_settings(config), config_path=config)
    with TestClient(create_app(service)) as client:
        config.write_text(
            "alerting:\n  resolve_after_s: 60\n"
            "detection:\n  rules:\n    - selector: '{service=\"web\"}'\n      detector: robust_mad\n"
            "server:\n  port: 9999\n"
        )
        body = client.post("/api/v1/config/reload").json()
        # kept: the default and the rule watching span/edge latency and error ratios upwards (traces.watch_up)
        assert body == {"applied": True, "kept_detectors": 2, "new_detectors": 1, "rerouted_series": 0,
                        "restart_required": ["server"]}
        assert service.pipeline.alerts.resolve_after_s == 60
        config.write_text("detection:\n  default:\n    detector: nope\n")
        bad = client.post("/api/v1/config/reload")
        assert bad.status_code == 422
        assert bad.json()["errors"][0]["field"] == "detection.default.detector" and bad.json()["errors"][0]["line"] == 3
        assert service.settings.alerting.resolve_after_s == 60  # the bad file changed nothing


def test_a_restart_resumes_with_the_detectors_warm(store_url, tmp_path):
    start = time.time() - 3600
    rng = np.random.default_rng(4)
    history = _series("lat", "a", 10 + rng.normal(0, 0.1, 100), start)
    with TestClient(create_app(_service(store_url, tmp_path))) as client:
        client.post("/api/v1/metrics", json=history)
        wait_for(lambda: client.get("/metrics").text, lambda t: "aiops_pipeline_points_total 100.0" in t)
    service = _service(store_url, tmp_path)  # a new process on the same store
    with TestClient(create_app(service)):
        found = service.detection.update(MetricBatch.from_arrays([0], [start + 2000], [30.0]))
    assert found.scores.ready[0] and found.severity[0] == 2  # no new warm-up: the spike is seen at once


def test_a_damaged_checkpoint_is_ignored(store_url, tmp_path):
    from aiops.pipeline import CHECKPOINT_NAME
    from aiops.store import repository

    with TestClient(create_app(_service(store_url, tmp_path))) as client:
        client.post("/api/v1/metrics", json=[{"name": "m", "value": 1.0}])
    service = _service(store_url, tmp_path)
    with service.store.begin() as conn:
        repository.save_checkpoint(conn, CHECKPOINT_NAME, b"garbage", 1.0)
    with TestClient(create_app(service)) as client:
        assert client.get("/readyz").status_code == 200  # started cold, and serves
