"""POST /v1/metrics through the app, as an OpenTelemetry Collector's otlphttp exporter (encoding: json) calls it."""

from __future__ import annotations

import gzip
import time
from collections.abc import Iterator

import msgspec
import numpy as np
import pytest
from fastapi.testclient import TestClient
from helpers import OTLP_JSON as JSON, make_service, ns, wait_for

from aiops.api import create_app
from aiops.service import Service


def _service(tmp_path, **env: str) -> Service:
    return make_service(tmp_path, **env)


@pytest.fixture
def client(tmp_path) -> Iterator[TestClient]:
    with TestClient(create_app(_service(tmp_path))) as c:
        yield c


def _export(metrics: list[dict], service: str = "checkout") -> bytes:
    """An ExportMetricsServiceRequest as the Collector's pdata JSON marshaller writes it."""
    return msgspec.json.encode({"resourceMetrics": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}},
                                    {"key": "k8s.pod.name", "value": {"stringValue": "checkout-7d9f"}}]},
        "scopeMetrics": [{"scope": {"name": "io.opentelemetry.runtime", "version": "2.1.0"}, "metrics": metrics}],
    }]})


def _gauge(name: str, samples: list[tuple[float, float]], **attrs: str) -> dict:
    attributes = [{"key": k, "value": {"stringValue": v}} for k, v in attrs.items()]
    return {"name": name, "unit": "%", "gauge": {"dataPoints": [
        {"attributes": attributes, "timeUnixNano": ns(t), "asDouble": v} for t, v in samples]}}


def _sample(client: TestClient, name: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def test_full_success_is_an_empty_object_and_points_are_counted(client):
    now = time.time()
    before = _sample(client, "aiops_ingest_points_accepted_total")
    body = _export([_gauge("process.cpu.utilization", [(now - 20, 0.5), (now - 10, 0.6)], state="user")])
    response = client.post("/v1/metrics", content=body, headers=JSON)
    assert response.status_code == 200 and response.json() == {}
    assert response.headers["content-type"] == "application/json"
    assert _sample(client, "aiops_ingest_points_accepted_total") == before + 2
    assert 'aiops_ingest_requests_total{status="200"} 1.0' in client.get("/metrics").text


def test_gzip_body_as_the_collector_sends_by_default(client):
    now = time.time()
    body = gzip.compress(_export([_gauge("g", [(now, 1.0)])]))
    response = client.post("/v1/metrics", content=body, headers={**JSON, "Content-Encoding": "gzip"})
    assert response.status_code == 200 and response.json() == {}


def test_counter_across_two_requests_becomes_a_rate(client):
    now = time.time()

    def counter(t: float, value: str) -> bytes:
        point = {"startTimeUnixNano": ns(now - 3600), "timeUnixNano": ns(t), "asInt": value}
        return _export([{"name": "http.server.request.count", "sum": {
            "dataPoints": [point], "aggregationTemporality": 2, "isMonotonic": True}}])

    assert client.post("/v1/metrics", content=counter(now - 30, "100"), headers=JSON).json() == {}
    before = _sample(client, "aiops_ingest_points_accepted_total")
    assert client.post("/v1/metrics", content=counter(now - 15, "400"), headers=JSON).json() == {}
    assert _sample(client, "aiops_ingest_points_accepted_total") == before + 1
    registry = client.app.state.service.registry
    names = {registry.name(s) for s in range(len(registry))}
    assert "http_server_request_count_rate" in names


def test_partial_success_counts_and_explains_rejected_points(client):
    now = time.time()
    metric = {"name": "g", "gauge": {"dataPoints": [
        {"timeUnixNano": ns(now), "asDouble": 1.0},
        {"timeUnixNano": ns(now), "asDouble": "NaN"},
        {"asDouble": 2.0},
    ]}}
    response = client.post("/v1/metrics", content=_export([metric]), headers=JSON)
    assert response.status_code == 200
    partial = response.json()["partialSuccess"]
    assert partial["rejectedDataPoints"] == "2"  # int64: a decimal string in OTLP JSON
    assert "data point 1: value" in partial["errorMessage"] and "data point 2: timeUnixNano" in partial["errorMessage"]
    assert 'aiops_ingest_points_rejected_total{field="value"} 1.0' in client.get("/metrics").text


def test_malformed_json_is_400_with_a_status_body(client):
    response = client.post("/v1/metrics", content=b"{not json", headers=JSON)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == 3 and body["message"].startswith("malformed JSON")
    shape = client.post("/v1/metrics", content=b'{"resourceMetrics": 5}', headers=JSON)
    assert shape.status_code == 400 and "resourceMetrics" in shape.json()["message"]


def test_other_content_types_and_encodings_are_415(client):
    for content_type in ("text/plain", "application/x-www-form-urlencoded"):
        response = client.post("/v1/metrics", content=b"{}", headers={"Content-Type": content_type})
        assert response.status_code == 415 and "application/x-protobuf" in response.json()["message"]
    zstd = client.post("/v1/metrics", content=b"{}", headers={**JSON, "Content-Encoding": "zstd"})
    assert zstd.status_code == 415 and "zstd" in zstd.json()["message"]
    charset = client.post("/v1/metrics", content=b"{}", headers={"Content-Type": "application/json; charset=utf-8"})
    assert charset.status_code == 200


def test_protobuf_request_gets_a_protobuf_answer(client):
    from google.protobuf.json_format import ParseDict
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
        ExportMetricsServiceResponse,
    )

    now = time.time()
    doc = msgspec.json.decode(_export([
        _gauge("process.cpu.utilization", [(now - 10, 0.5), (now, 0.75)], state="user"),
        {"name": "bad", "gauge": {"dataPoints": [{"asDouble": 1.0}]}},  # no time: rejected
    ]))
    body = gzip.compress(ParseDict(doc, ExportMetricsServiceRequest()).SerializeToString())
    proto = {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}
    response = client.post("/v1/metrics", content=body, headers=proto)
    assert response.status_code == 200 and response.headers["content-type"] == "application/x-protobuf"
    answer = ExportMetricsServiceResponse.FromString(response.content)
    assert answer.partial_success.rejected_data_points == 1
    assert "timeUnixNano: metric 'bad': required" in answer.partial_success.error_message
    registry = client.app.state.service.registry
    sid = registry.get(("process_cpu_utilization", (("k8s_pod_name", "checkout-7d9f"), ("service", "checkout"),
                                                    ("service_name", "checkout"), ("state", "user"))))
    assert sid is not None

    bad = client.post("/v1/metrics", content=b"\xff\xff\xff", headers={"Content-Type": "application/x-protobuf"})
    assert bad.status_code == 400 and bad.headers["content-type"] == "application/x-protobuf"
    assert bad.content[:2] == b"\x08\x03" and b"malformed protobuf" in bad.content  # google.rpc.Status{code: 3, …}


def test_oversized_body_is_413_also_after_inflating(tmp_path):
    with TestClient(create_app(_service(tmp_path, AIOPS_SERVER__MAX_BODY_BYTES="2048"))) as client:
        now = time.time()
        big = _export([_gauge("g", [(now - i, 1.0) for i in range(100)])])
        response = client.post("/v1/metrics", content=big, headers=JSON)
        assert response.status_code == 413 and response.json()["code"] == 3 and "2048" in response.json()["message"]
        bomb = client.post("/v1/metrics", content=gzip.compress(big), headers={**JSON, "Content-Encoding": "gzip"})
        assert bomb.status_code == 413
        assert client.post("/v1/metrics", content=_export([_gauge("g", [(now, 1.0)])]), headers=JSON).status_code == 200


def test_saturated_pipeline_is_503_with_retry_after_then_the_retry_succeeds(tmp_path):
    service = _service(tmp_path, AIOPS_BUS__QUEUE_BATCHES="1", AIOPS_SERVER__INGEST_WAIT_S="0.05")
    with TestClient(create_app(service)) as client:
        service.pipeline.stop(drain=False)
        now = time.time()
        assert client.post("/v1/metrics", content=_export([_gauge("g", [(now, 1.0)])]), headers=JSON).status_code == 200
        full = client.post("/v1/metrics", content=_export([_gauge("g", [(now + 1, 2.0)])]), headers=JSON)
        assert full.status_code == 503 and full.headers["retry-after"] == "1" and full.json()["code"] == 14
        service.pipeline.start()
        retried = wait_for(lambda: client.post("/v1/metrics", content=_export([_gauge("g", [(now + 1, 2.0)])]),
                                               headers=JSON), lambda r: r.status_code == 200)
        assert retried.json() == {}


def test_an_anomaly_in_an_otlp_gauge_raises_an_alert(client):
    rng = np.random.default_rng(7)
    start = time.time() - 3600
    normal = [(start + 10 * i, 50 + rng.normal(0, 1)) for i in range(100)]
    body = _export([_gauge("system.cpu.utilization", normal, cpu="cpu0")])
    assert client.post("/v1/metrics", content=body, headers=JSON).json() == {}
    spikes = [(start + 1000 + 10 * i, v) for i, v in enumerate((95.0, 97.0, 96.0))]
    assert client.post("/v1/metrics", content=_export([_gauge("system.cpu.utilization", spikes, cpu="cpu0")]),
                       headers=JSON).json() == {}

    alerts = wait_for(lambda: client.get("/api/v1/alerts").json()["items"], lambda a: a and a[0]["count"] >= 1)
    assert len(alerts) == 1
    assert alerts[0]["labels"] == {"__name__": "system_cpu_utilization", "cpu": "cpu0", "service": "checkout",
                                   "service_name": "checkout", "k8s_pod_name": "checkout-7d9f"}
    anomalies = client.get("/api/v1/anomalies", params={"label": "service=checkout"}).json()["items"]
    assert anomalies and anomalies[-1]["value"] == 95.0
