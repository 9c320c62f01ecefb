"""POST /v1/logs through the app, with bodies shaped as an OpenTelemetry Collector's otlphttp exporter sends them."""

from __future__ import annotations

import gzip
import time
from collections.abc import Iterator

import msgspec
import pytest
from fastapi.testclient import TestClient
from helpers import OTLP_JSON as JSON, OTLP_PROTOBUF as PROTOBUF, make_service, ns, wait_for

from aiops.api import create_app
from aiops.service import Service


def _service(tmp_path, **env: str) -> Service:
    return make_service(tmp_path, **{"AIOPS_LOGS__WARMUP_RECORDS": "20", **env})


@pytest.fixture
def client(tmp_path) -> Iterator[TestClient]:
    with TestClient(create_app(_service(tmp_path))) as c:
        yield c


def _record(t: float, text: str, severity: int = 9, **extra) -> dict:
    """A log record as the Collector's pdata JSON marshaller writes one (filelog receiver + severity parser)."""
    levels = {9: "INFO", 13: "WARN", 17: "ERROR", 21: "FATAL"}
    return {"timeUnixNano": ns(t), "observedTimeUnixNano": ns(t + 0.2), "severityNumber": severity,
            "severityText": levels.get(severity, ""), "body": {"stringValue": text},
            "attributes": [{"key": "log.file.name", "value": {"stringValue": "app.log"}}],
            "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", **extra}


def _export(records: list[dict], service: str = "checkout", host: str = "checkout-1") -> dict:
    return {"resourceLogs": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}},
                                    {"key": "host.name", "value": {"stringValue": host}},
                                    {"key": "k8s.pod.name", "value": {"stringValue": "checkout-7d9f"}}]},
        "scopeLogs": [{"scope": {"name": "filelog"}, "logRecords": records}],
    }]}


def _calm(start: float, n: int) -> list[dict]:
    return [_record(start + i, f"GET /api/items/{i} answered 200 in {i % 17} ms") for i in range(n)]


def test_full_success_is_an_empty_object_and_counts_become_series(client):
    start = time.time() - 300
    body = msgspec.json.encode(_export(_calm(start, 200)))  # 200 s: the first intervals close
    response = client.post("/v1/logs", content=body, headers=JSON)
    assert response.status_code == 200 and response.json() == {}
    assert response.headers["content-type"] == "application/json"
    registry = client.app.state.service.registry
    keys = [registry.key(sid) for sid in range(len(registry))]
    counts = [dict(labels) for name, labels in keys if name == "log_template_count"]
    assert counts and counts[0]["service"] == "checkout" and counts[0]["host"] == "checkout-1"
    assert counts[0]["template_id"].isdigit()
    errors = [dict(labels) for name, labels in keys if name == "log_error_count"]
    assert errors == [{"service": "checkout", "host": "checkout-1"}]  # one source; pod is not a source label
    accepted = next(float(line.split()[-1]) for line in client.get("/metrics").text.splitlines()
                    if line.startswith("aiops_ingest_points_accepted_total"))
    assert accepted >= 4  # closed intervals' counts went through the metric path


def test_gzip_and_the_protobuf_encoding_get_answers_in_kind(client):
    from google.protobuf.json_format import ParseDict
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
        ExportLogsServiceRequest, ExportLogsServiceResponse,
    )

    now = time.time()
    gz = client.post("/v1/logs", content=gzip.compress(msgspec.json.encode(_export(_calm(now - 10, 5)))),
                     headers={**JSON, "Content-Encoding": "gzip"})
    assert gz.status_code == 200 and gz.json() == {}
    bad = _record(now, "bad id")
    bad["spanId"] = "zz"
    message = ParseDict({"resourceLogs": _export(_calm(now - 5, 3))["resourceLogs"]}, ExportLogsServiceRequest())
    message.resource_logs[0].scope_logs[0].log_records[0].span_id = b"\x01\x02"  # 2 bytes: not a span id
    body = gzip.compress(message.SerializeToString())
    response = client.post("/v1/logs", content=body, headers={**PROTOBUF, "Content-Encoding": "gzip"})
    assert response.status_code == 200 and response.headers["content-type"] == "application/x-protobuf"
    answer = ExportLogsServiceResponse.FromString(response.content)
    assert answer.partial_success.rejected_log_records == 1 and "spanId" in answer.partial_success.error_message
    broken = client.post("/v1/logs", content=b"\xff\xff\xff", headers=PROTOBUF)
    assert broken.status_code == 400 and broken.headers["content-type"] == "application/x-protobuf"
    assert broken.content[:2] == b"\x08\x03" and b"malformed protobuf" in broken.content


def test_partial_success_keeps_the_valid_records_and_names_the_bad_ones(client):
    now = time.time()
    records = _calm(now - 10, 3)
    records.append({"body": {"stringValue": "no time at all"}})
    records.append(_record(now, "bad severity", severity=99))
    records.append(_record(now, "bad trace", traceId="not-hex"))
    records.append(_record(now, "bad body", body="plain string, not an AnyValue"))
    response = client.post("/v1/logs", content=msgspec.json.encode(_export(records)), headers=JSON)
    assert response.status_code == 200
    partial = response.json()["partialSuccess"]
    assert partial["rejectedLogRecords"] == "4"  # int64: a decimal string
    message = partial["errorMessage"]
    assert message.startswith("4 of 7 log records rejected")
    for part in ("log record 3: timeUnixNano", "log record 4: severityNumber", "log record 5: traceId",
                 "log record 6: body"):
        assert part in message
    exposition = client.get("/metrics").text
    assert 'aiops_ingest_log_records_total{outcome="accepted"} 3.0' in exposition
    assert 'aiops_ingest_log_records_total{outcome="rejected"} 4.0' in exposition


@pytest.mark.parametrize(("body", "fragment"), [
    (b"{not json", "malformed JSON"),
    (b'{"resourceLogs": {"not": "a list"}}', "not an ExportLogsServiceRequest"),
    (b'{"resourceLogs": [{"scopeLogs": [{"logRecords": ["a string"]}]}]}', "not an ExportLogsServiceRequest"),
])
def test_malformed_json_is_400_with_a_status_body(client, body, fragment):
    response = client.post("/v1/logs", content=body, headers=JSON)
    assert response.status_code == 400 and response.json()["code"] == 3 and fragment in response.json()["message"]


def test_wrong_content_type_is_415_and_too_large_is_413(tmp_path):
    with TestClient(create_app(_service(tmp_path, AIOPS_SERVER__MAX_BODY_BYTES="2048"))) as client:
        wrong = client.post("/v1/logs", content=b"a=b", headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert wrong.status_code == 415 and "application/x-protobuf" in wrong.json()["message"]
        big = msgspec.json.encode(_export(_calm(time.time() - 100, 50)))
        assert len(big) > 2048
        too_large = client.post("/v1/logs", content=big, headers=JSON)
        assert too_large.status_code == 413 and too_large.json()["code"] == 3
        bomb = client.post("/v1/logs", content=gzip.compress(big), headers={**JSON, "Content-Encoding": "gzip"})
        assert bomb.status_code == 413


def test_disabled_logs_answer_404(tmp_path):
    with TestClient(create_app(_service(tmp_path, AIOPS_LOGS__ENABLED="false"))) as client:
        response = client.post("/v1/logs", content=b"{}", headers=JSON)
        assert response.status_code == 404 and response.json()["code"] == 12


def test_a_template_never_seen_after_warm_up_raises_an_alert_with_masked_examples(client):
    now = time.time()
    assert client.post("/v1/logs", content=msgspec.json.encode(_export(_calm(now - 60, 30))), headers=JSON).json() == {}
    burst = [_record(now - 5 + i * 0.1, f"connection pool exhausted for db-{i % 2} password=s3cr3t{i} "
                                        f"timeout after {3000 + i} ms", severity=17) for i in range(5)]
    assert client.post("/v1/logs", content=msgspec.json.encode(_export(burst)), headers=JSON).json() == {}
    alerts = wait_for(lambda: client.get("/api/v1/alerts").json()["items"], lambda items: items)
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert["labels"]["__name__"] == "log_template_count" and alert["labels"]["service"] == "checkout"
    assert alert["severity"] == "critical"  # first seen at ERROR
    context = alert["details"]["explanation"]["log"]
    assert context["new_template"] is True
    assert context["template"] == "connection pool exhausted for <*> password=<*> timeout after <*> ms"
    assert context["examples"] and all("password=***" in line and "s3cr3t" not in line for line in context["examples"])
    assert "new log template" in alert["summary"] and "connection pool exhausted" in alert["summary"]


def test_the_template_table_survives_a_restart(tmp_path):
    now = time.time()
    with TestClient(create_app(_service(tmp_path))) as client:
        client.post("/v1/logs", content=msgspec.json.encode(_export(_calm(now - 60, 30))), headers=JSON)
        rare = [_record(now - 1, "cache warmed with 1200 entries")]
        client.post("/v1/logs", content=msgspec.json.encode(_export(rare)), headers=JSON)
        wait_for(lambda: client.get("/api/v1/alerts").json()["items"], lambda items: items)
        first = client.get("/api/v1/alerts").json()["items"]
        assert len(first) == 1  # the rare line was new once
    with TestClient(create_app(_service(tmp_path))) as client:  # same store: the table is restored
        assert client.app.state.service.logs.monitor.miner.templates()  # not an empty miner
        again = [_record(now + 1, "cache warmed with 900 entries")]
        assert client.post("/v1/logs", content=msgspec.json.encode(_export(again)), headers=JSON).json() == {}
        newer = [_record(now + 2, "shard rebalanced in 15 s")]
        assert client.post("/v1/logs", content=msgspec.json.encode(_export(newer)), headers=JSON).json() == {}
        alerts = wait_for(lambda: client.get("/api/v1/alerts").json()["items"], lambda items: len(items) >= 2)
        templates = sorted(a["details"]["explanation"]["log"]["template"] for a in alerts)
        assert templates == ["cache warmed with <*> entries", "shard rebalanced in <*> s"]  # no second "cache" alert


def test_saturated_pipeline_is_503_and_nothing_of_the_request_is_counted(tmp_path):
    service = _service(tmp_path, AIOPS_BUS__QUEUE_BATCHES="1", AIOPS_SERVER__INGEST_WAIT_S="0.05")
    with TestClient(create_app(service)) as client:
        service.pipeline.stop(drain=False)
        now = time.time()
        filler = {"points": [{"name": "g", "labels": {}, "ts": now, "value": 1.0}]}
        assert client.post("/api/v1/metrics", json=filler).status_code == 202  # the bus (one batch) is full
        seen = service.logs.monitor.state_dict()["seen"]
        body = msgspec.json.encode(_export(_calm(now - 10, 5)))
        full = client.post("/v1/logs", content=body, headers=JSON)
        assert full.status_code == 503 and full.headers["retry-after"] == "1" and full.json()["code"] == 14
        assert service.logs.monitor.state_dict()["seen"] == seen  # not mined: the retry will not count twice
        service.pipeline.start()
        retried = wait_for(lambda: client.post("/v1/logs", content=body, headers=JSON), lambda r: r.status_code == 200)
        assert retried.json() == {} and service.logs.monitor.state_dict()["seen"] == seen + 5


def test_a_burst_of_errors_then_silence_is_found_by_the_detectors_with_the_lines_of_its_interval(tmp_path):
    env = {"AIOPS_LOGS__INTERVAL_S": "1", "AIOPS_LOGS__GRACE_S": "0", "AIOPS_LOGS__WARMUP_RECORDS": "100000"}
    with TestClient(create_app(_service(tmp_path, **env))) as client:
        start = float(int(time.time()) - 400)  # whole seconds: the burst fills one interval
        calm = [_record(start + i + 0.5, f"request {i} served in {i % 9} ms") for i in range(300)]
        calm += [_record(start + i + 0.7, f"upstream answered 502 for request {i}", severity=17)
                 for i in range(0, 300, 7)]
        calm.sort(key=lambda r: int(r["timeUnixNano"]))
        assert client.post("/v1/logs", content=msgspec.json.encode(_export(calm)), headers=JSON).json() == {}
        burst = [_record(start + 300 + k / 40, f"disk quota exceeded on /data/{k} api_key=AKIAIOSFODNN7EXAMPL{k % 10}",
                         severity=17) for k in range(40)]
        # nothing logged after the burst: its interval is closed by the pipeline once the logs fell silent
        assert client.post("/v1/logs", content=msgspec.json.encode(_export(burst)), headers=JSON).json() == {}

        def error_alerts() -> list[dict]:
            return [a for a in client.get("/api/v1/alerts").json()["items"]
                    if a["labels"]["__name__"] == "log_error_count"]

        [alert] = wait_for(error_alerts, lambda items: items)
        assert alert["details"]["value"] == 40.0
        logged = alert["details"]["explanation"]["log"]
        assert logged["templates"] == ["disk quota exceeded on <*> api_key=<*>"]
        assert logged["examples"] == ["disk quota exceeded on /data/0 api_key=***",
                                      "disk quota exceeded on /data/1 api_key=***",
                                      "disk quota exceeded on /data/2 api_key=***"]
        assert alert["labels"] == {"__name__": "log_error_count", "service": "checkout", "host": "checkout-1"}
