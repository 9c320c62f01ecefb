"""POST /v1/traces as an OpenTelemetry Collector's otlphttp exporter calls it, and what spans become:
RED and edge series, the service map (GET /api/v1/topology), new-edge change events, incident grouping."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterator

import msgspec
import pytest
from fastapi.testclient import TestClient
from helpers import OTLP_JSON as JSON, OTLP_PROTOBUF as PROTOBUF, make_service, ns, post_latency_spikes, wait_for

from aiops.api import create_app
from aiops.service import Service


def _service(tmp_path, **env: str) -> Service:
    return make_service(tmp_path, **{"AIOPS_TRACES__INTERVAL_S": "10", "AIOPS_TRACES__GRACE_S": "0", **env})


@pytest.fixture
def client(tmp_path) -> Iterator[TestClient]:
    with TestClient(create_app(_service(tmp_path))) as c:
        yield c


def _attr(key: str, value) -> dict:
    typed = {"intValue": str(value)} if isinstance(value, int) else {"stringValue": value}
    return {"key": key, "value": typed}


def _span(trace: str, span: str, parent: str, name: str, kind: int, start: float, ms: float, error: bool = False,
          **attrs) -> dict:
    """A span as the Collector's pdata JSON marshaller writes it (hex ids, string int64, int enums)."""
    out = {"traceId": trace, "spanId": span, "parentSpanId": parent, "name": name, "kind": kind,
           "startTimeUnixNano": ns(start), "endTimeUnixNano": str(int(ns(start)) + round(ms * 1e6)),
           "attributes": [_attr(k.replace("_", "."), v) for k, v in attrs.items()],
           "events": [], "links": [], "status": {"code": 2, "message": "boom"} if error else {}}
    if not parent:
        del out["parentSpanId"]  # the default: left out
    return out


def _export(by_service: dict[str, list[dict]]) -> dict:
    return {"resourceSpans": [{
        "resource": {"attributes": [_attr("service.name", svc), _attr("k8s.pod.name", f"{svc}-7d9f")]},
        "scopeSpans": [{"scope": {"name": "io.opentelemetry.http", "version": "2.1.0"}, "spans": spans}],
        "schemaUrl": "https://opentelemetry.io/schemas/1.24.0",
    } for svc, spans in by_service.items()]}


def _trace(k: int, t: float, pay_ms: float = 20.0, pay_error: bool = False) -> dict[str, list[dict]]:
    """checkout serves GET /cart, calls payments (CLIENT span), payments serves POST /charge."""
    trace = f"{k + 1:032x}"
    root, client_span, server = f"{3 * k + 1:016x}", f"{3 * k + 2:016x}", f"{3 * k + 3:016x}"
    return {
        "checkout": [_span(trace, root, "", "GET /cart", 2, t, pay_ms + 10, http_response_status_code=200),
                     _span(trace, client_span, root, "POST", 3, t + 0.002, pay_ms + 2)],
        "payments": [_span(trace, server, client_span, "POST /charge", 2, t + 0.003, pay_ms, pay_error)],
    }


def _merge(*parts: dict[str, list[dict]]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for part in parts:
        for svc, spans in part.items():
            out.setdefault(svc, []).extend(spans)
    return out


def _traces(start: float, n: int, step: float = 1.0, **kw) -> bytes:
    return msgspec.json.encode(_export(_merge(*(_trace(k, start + k * step, **kw) for k in range(n)))))


def _names(client: TestClient) -> dict[str, list[dict]]:
    registry = client.app.state.service.registry
    out: dict[str, list[dict]] = {}
    for sid in range(len(registry)):
        name, labels = registry.key(sid)
        out.setdefault(name, []).append(dict(labels))
    return out


def test_collector_json_is_accepted_and_becomes_red_and_edge_series(client):
    now = time.time()
    response = client.post("/v1/traces", content=_traces(now - 60, 30), headers=JSON)
    assert response.status_code == 200 and response.json() == {}
    assert response.headers["content-type"] == "application/json"
    metrics = client.get("/metrics").text
    assert "aiops_ingest_spans_accepted_total 90.0" in metrics
    names = _names(client)  # 30 s of spans in 10 s intervals: the first two are closed
    assert {"service": "checkout", "operation": "GET /cart"} in names["span_rate"]
    assert {"service": "payments", "operation": "POST /charge"} in names["span_latency_p95_ms"]
    assert all(labels["operation"] != "POST" for labels in names["span_rate"])  # CLIENT spans are not requests served
    for name in ("span_error_ratio", "span_latency_p50_ms", "span_latency_p99_ms"):
        assert name in names
    assert names["edge_latency_p95_ms"] == [{"caller": "checkout", "callee": "payments", "service": "payments"}]
    assert "edge_call_rate" in names and "edge_error_ratio" in names


def test_gzip_and_protobuf_bodies_get_answers_in_their_encoding(client):
    from google.protobuf.json_format import ParseDict
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
        ExportTraceServiceResponse,
    )

    now = time.time()
    gz = client.post("/v1/traces", content=gzip.compress(_traces(now - 60, 5)),
                     headers={**JSON, "Content-Encoding": "gzip"})
    assert gz.status_code == 200 and gz.json() == {}

    payload = _export(_merge(*(_trace(k, now - 30 + k) for k in range(100, 105))))
    bad = _span(f"{1:032x}", f"{999:016x}", "", "GET /x", 2, now - 10, 5.0)
    bad["endTimeUnixNano"] = ns(now - 20)  # ends before it starts
    payload["resourceSpans"][0]["scopeSpans"][0]["spans"].append(bad)
    for rs in payload["resourceSpans"]:  # protobuf JSON mapping wants base64 ids: convert the hex ones
        for span in rs["scopeSpans"][0]["spans"]:
            for key in ("traceId", "spanId", "parentSpanId"):
                if key in span:
                    span[key] = _b64(span[key])
    message = ParseDict(payload, ExportTraceServiceRequest())
    response = client.post("/v1/traces", content=message.SerializeToString(), headers=PROTOBUF)
    assert response.status_code == 200 and response.headers["content-type"] == "application/x-protobuf"
    answer = ExportTraceServiceResponse.FromString(response.content)
    assert answer.partial_success.rejected_spans == 1
    assert "endTimeUnixNano: ends before it starts" in answer.partial_success.error_message
    edges = client.get("/api/v1/topology").json()["edges"]
    assert [(e["caller"], e["callee"], e["calls"]) for e in edges] == [("checkout", "payments", 10)]

    broken = client.post("/v1/traces", content=b"\x0a\xff\xff", headers=PROTOBUF)
    assert broken.status_code == 400 and broken.headers["content-type"] == "application/x-protobuf"
    assert broken.content[:2] == b"\x08\x03" and b"malformed protobuf" in broken.content  # google.rpc.Status{code: 3}


def _b64(hex_id: str) -> str:
    import base64

    return base64.b64encode(bytes.fromhex(hex_id)).decode()


def test_partial_success_rejects_bad_spans_one_by_one_and_keeps_the_rest(client):
    now = time.time()
    good = _trace(0, now - 30)
    bad_ids = _span("xyz", "00000000000000000000000000000000", "", "GET /a", 2, now - 30, 5.0)
    bad_span_id = _span(f"{7:032x}", "0000000000000000", "", "GET /a", 2, now - 30, 5.0)
    reversed_times = _span(f"{7:032x}", f"{70:016x}", "", "GET /a", 2, now - 30, 5.0)
    reversed_times["endTimeUnixNano"] = ns(now - 40)
    no_time = _span(f"{7:032x}", f"{71:016x}", "", "GET /a", 2, now - 30, 5.0)
    del no_time["startTimeUnixNano"]
    future = _span(f"{7:032x}", f"{72:016x}", "", "GET /a", 2, now + 3600, 5.0)
    bad_kind = _span(f"{7:032x}", f"{73:016x}", "", "GET /a", 9, now - 30, 5.0)
    body = _export(_merge(good, {"search": [bad_ids, bad_span_id, reversed_times, no_time, future, bad_kind]}))
    response = client.post("/v1/traces", content=msgspec.json.encode(body), headers=JSON)
    assert response.status_code == 200
    partial = response.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "6"  # int64: a decimal string
    message = partial["errorMessage"]
    assert message.startswith("6 of 9 spans rejected")
    assert "traceId: expected 32 hex characters" in message and "spanId: must not be all zeros" in message
    assert "endTimeUnixNano: ends before it starts" in message and "startTimeUnixNano: missing" in message
    assert "and 1 more" in message  # five reasons quoted, all counted
    metrics = client.get("/metrics").text
    assert "aiops_ingest_spans_accepted_total 3.0" in metrics
    assert 'aiops_ingest_spans_rejected_total{field="traceId"} 1.0' in metrics


def test_malformed_bodies_wrong_types_and_sizes_get_the_spec_errors(tmp_path):
    with TestClient(create_app(_service(tmp_path, AIOPS_SERVER__MAX_BODY_BYTES="4096"))) as client:
        response = client.post("/v1/traces", content=b"{not json", headers=JSON)
        assert response.status_code == 400
        assert response.json()["code"] == 3 and response.json()["message"].startswith("malformed JSON")
        shape = client.post("/v1/traces", content=b'{"resourceSpans": [{"scopeSpans": [{"spans": [5]}]}]}',
                            headers=JSON)
        assert shape.status_code == 400 and "ExportTraceServiceRequest" in shape.json()["message"]
        for content_type in ("text/plain", "application/x-ndjson"):
            wrong = client.post("/v1/traces", content=b"{}", headers={"Content-Type": content_type})
            assert wrong.status_code == 415 and "application/x-protobuf" in wrong.json()["message"]
        zstd = client.post("/v1/traces", content=b"{}", headers={**JSON, "Content-Encoding": "zstd"})
        assert zstd.status_code == 415
        big = client.post("/v1/traces", content=_traces(time.time() - 60, 50), headers=JSON)
        assert big.status_code == 413 and big.json()["code"] == 3
        bomb = gzip.compress(b" " * 100_000 + b"{}")
        inflated = client.post("/v1/traces", content=bomb, headers={**JSON, "Content-Encoding": "gzip"})
        assert inflated.status_code == 413
        assert client.post("/v1/traces", content=b"{}", headers=JSON).json() == {}  # empty request: fine


def test_traces_can_be_switched_off(tmp_path):
    with TestClient(create_app(_service(tmp_path, AIOPS_TRACES__ENABLED="false"))) as client:
        response = client.post("/v1/traces", content=b"{}", headers=JSON)
        assert response.status_code == 404 and response.json()["code"] == 12  # google.rpc UNIMPLEMENTED


def test_a_saturated_pipeline_is_503_and_nothing_is_counted(client):
    service = client.app.state.service
    service.pipeline.stop(drain=False)
    service.settings = service.settings.model_copy(update={"server": service.settings.server.model_copy(
        update={"ingest_wait_s": 0.0})})
    while service.bus.try_publish("metrics", None):
        pass
    response = client.post("/v1/traces", content=_traces(time.time() - 60, 3), headers=JSON)
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert response.json()["code"] == 14
    assert service.traces.aggregator.edges == {}  # not folded in: the Collector's retry counts once
    service.bus.consume("metrics", 10_000, 0.0)


def test_topology_merges_traced_and_configured_edges_and_a_new_edge_is_a_change_event(tmp_path):
    config = json.dumps({"checkout": ["legacy-db"], "search": ["catalog"]})
    service = _service(tmp_path, AIOPS_ALERTING__INCIDENTS__TOPOLOGY=config)
    now = time.time()
    with TestClient(create_app(service)) as client:
        assert client.post("/v1/traces", content=_traces(now - 60, 30, pay_error=True), headers=JSON).json() == {}
        topology = client.get("/api/v1/topology").json()
        edges = {(e["caller"], e["callee"]): e for e in topology["edges"]}
        # checkout calls something in traces: its configured callees give way; search keeps its own
        assert set(edges) == {("checkout", "payments"), ("search", "catalog")}
        traced = edges[("checkout", "payments")]
        assert traced["source"] == "traced" and traced["calls"] == 30 and traced["errors"] == 30
        assert traced["error_ratio"] == 1.0 and traced["call_rate"] == 1.0  # ten calls in a 10 s interval
        assert traced["p95_ms"] == pytest.approx(20.0) and now - 61 < traced["first_seen"] < traced["last_seen"] < now
        assert edges[("search", "catalog")]["source"] == "config" and edges[("search", "catalog")]["calls"] == 0
        nodes = {n["service"]: n["traced"] for n in topology["nodes"]}
        assert nodes == {"catalog": False, "checkout": True, "payments": True, "search": False}

        events = client.get("/api/v1/events", params={"kind": "topology"}).json()["items"]
        assert len(events) == 1
        event = events[0]
        assert event["title"] == "new dependency: checkout calls payments" and event["source"] == "traces"
        assert event["labels"] == {"service": "checkout", "caller": "checkout", "callee": "payments"}
        assert event["ts"] == traced["first_seen"]
        client.post("/v1/traces", content=_traces(now - 20, 5), headers=JSON)  # the same edge again: no new event
        assert len(client.get("/api/v1/events", params={"kind": "topology"}).json()["items"]) == 1

    # the traced map survives a restart, and a known edge is not announced again
    with TestClient(create_app(_service(tmp_path, AIOPS_ALERTING__INCIDENTS__TOPOLOGY=config))) as client:
        edges = {(e["caller"], e["callee"]): e for e in client.get("/api/v1/topology").json()["edges"]}
        assert edges[("checkout", "payments")]["calls"] == 35
        client.post("/v1/traces", content=_traces(now - 10, 3), headers=JSON)
        assert len(client.get("/api/v1/events", params={"kind": "topology"}).json()["items"]) == 1


def test_incidents_group_and_rank_by_the_traced_map(tmp_path):
    """No configured map and no shared-label grouping: only the traced edges join checkout and payments."""
    service = _service(tmp_path, AIOPS_ALERTING__INCIDENTS__GROUP_BY="[]", AIOPS_ALERTING__RESOLVE_AFTER_S="1")
    with TestClient(create_app(service)) as client:
        assert client.post("/v1/traces", content=_traces(time.time() - 900, 5), headers=JSON).json() == {}
        post_latency_spikes(client, ["payments", "checkout", "search"], time.time() - 720)
        items = wait_for(lambda: client.get("/api/v1/incidents").json()["items"],
                         lambda i: sum(x["alert_count"] for x in i) == 3)
        assert sorted(sorted(i["services"]) for i in items) == [["checkout", "payments"], ["search"]]
        shop = next(i for i in items if "checkout" in i["services"])
        detail = client.get(f"/api/v1/incidents/{shop['id']}").json()
        assert detail["origins"][0]["service"] == "payments"
        assert "checkout depends on it" in detail["origins"][0]["reasons"]
