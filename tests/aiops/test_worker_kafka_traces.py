"""Spans over Kafka (Tansu): api-only POST /v1/traces → spans topic (by trace) → callers resolved → spans by
service → RED and edge points → metrics topic → detected. Two workers split the partitions; one stops
mid-stream and the other takes its partitions over: the figures stay those of one in-process aggregator.
A poison spans record goes to the dead letters while the rest flows.
"""

from __future__ import annotations

import uuid

import msgspec
import numpy as np
import pytest
from fastapi.testclient import TestClient
from kafka import KafkaProducer

from aiops.api import create_app
from aiops.service import Service, topic_partitions
from aiops.settings import Settings
from aiops.worker import Worker
from detectors.red import RedAggregator
from helpers import OTLP_JSON, json_value, read_topic, run_worker, store_rows, wait_for
from ingest.bus import BusFull
from ingest.kafka_bus import create_topics
from ingest.otlp_traces import OtlpTracesDecoder

pytestmark = pytest.mark.kafka

PARTITIONS = 3
T0 = 1.7e9
INTERVAL = 10
CALM = 40  # intervals before the regression: past the detectors' warm-up
REGRESSION = CALM  # the interval where payments gets 10x slower


def _config(bootstrap: str, store_url: str, tag: str) -> dict:
    return {
        "data_dir": "data",
        "store": {"url": store_url},
        "server": {"mode": "api-only"},
        "kafka": {
            "bootstrap": bootstrap,
            "topics": {"metrics": f"m-{tag}", "logs": f"l-{tag}", "spans": f"s-{tag}", "spans_by_service": f"sbs-{tag}",
                       "dead_letter": f"dead-{tag}", "anomalies": None, "alerts": None},
            "group": f"g-{tag}", "partitions": PARTITIONS, "session_timeout_ms": 6000, "checkpoint_every_s": 1.0,
        },
        "logs": {"enabled": False},
        "traces": {"interval_s": INTERVAL, "grace_s": 0},
        "detection": {"default": {"detector": "ewma_zscore", "params": {"warmup": 30}}},
        "forecasting": {"enabled": False},
        "remediation": {"executor": False},
    }


def _export(intervals: range, rng: np.random.Generator) -> bytes:
    """Per interval 12 traces: checkout GET /cart (SERVER) → its CLIENT span → payments charge (SERVER)."""
    by_service: dict[str, list[dict]] = {"checkout": [], "payments": []}
    for i in intervals:
        slow = 10.0 if i == REGRESSION else 1.0
        for j in range(12):
            trace = f"{rng.integers(1, 2**62):016x}{rng.integers(1, 2**62):016x}"
            end = int((T0 + INTERVAL * i + 0.5 + 0.7 * j) * 1e9)
            pay_ms = slow * (20 + rng.gamma(2.0, 2.0))
            root, client, server = (f"{rng.integers(1, 2**62):016x}" for _ in range(3))

            def span(span_id, parent, name, kind, ms, error=False):
                return {"traceId": trace, "spanId": span_id, "parentSpanId": parent, "name": name, "kind": kind,
                        "startTimeUnixNano": str(end - int(ms * 1e6)), "endTimeUnixNano": str(end),
                        "status": {"code": 2 if error else 0}}

            by_service["checkout"] += [span(root, "", "GET /cart", 2, pay_ms + 9), span(client, root, "POST /charge", 3, pay_ms + 2)]
            by_service["payments"].append(span(server, client, "charge", 2, pay_ms, error=j == 0 and i % 4 == 0))
    return msgspec.json.encode({"resourceSpans": [
        {"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": name}}]},
         "scopeSpans": [{"scope": {"name": "app"}, "spans": spans}]}
        for name, spans in by_service.items()
    ]})


def _expected(bodies: list[bytes]) -> dict[tuple[str, float], float]:
    """p95 latencies of payments and of the checkout → payments edge from one in-process aggregator."""
    agg, decoder, out = RedAggregator(INTERVAL, 0), OtlpTracesDecoder(), {}
    for body in bodies:
        points, _ = agg.add(decoder.decode(body, T0 + 1e6).spans)
        for p in (points, agg.flush() if body is bodies[-1] else None):
            if p is None:
                continue
            for svc, end, p95 in zip(p.service, p.interval_end.tolist(), p.p95_ms.tolist()):
                out[(f"span_latency_p95_ms:{svc}", end)] = p95
            for end, p95 in zip(p.edges.interval_end.tolist(), p.edges.p95_ms.tolist()):
                out[("edge_latency_p95_ms", end)] = p95
    return out


def test_spans_flow_through_two_stages_and_two_workers_to_alerts_with_exact_figures(kafka_bootstrap, tmp_path):
    tag = uuid.uuid4().hex[:10]
    settings = Settings.model_validate(_config(kafka_bootstrap, f"sqlite:///{tmp_path / 'aiops.db'}", tag))
    create_topics(kafka_bootstrap, topic_partitions(settings.kafka))
    rng = np.random.default_rng(7)
    first_half = [_export(range(start, start + 5), rng) for start in range(0, 20, 5)]
    second_half = [_export(range(start, start + 5), rng) for start in range(20, CALM + 2, 5)]
    raw = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    raw.send(settings.kafka.topics.spans, value=b'{"v": 1, "names": []}', partition=0)  # poison: no columns
    raw.flush()
    raw.close()
    a, b = Worker(settings, client_id="a"), Worker(settings, client_id="b")
    stop_a, thread_a = run_worker(a)
    stop_b, thread_b = run_worker(b)
    store = a.service.store
    api = Service(settings)
    try:
        with TestClient(create_app(api)) as client:
            for body in first_half:
                assert client.post("/v1/traces", content=body, headers=OTLP_JSON).json() == {}
            wait_for(lambda: a.spans + b.spans, lambda n: n == 20 * 12 * 3, 60)  # both stages share the work
            assert a.spans and b.spans
            stop_a.set()  # a leaves mid-stream: b takes over a's partitions, held records included
            thread_a.join(60)
            for body in second_half:
                assert client.post("/v1/traces", content=body, headers=OTLP_JSON).json() == {}
            send = api.span_producer.send

            def full(spans):
                raise BusFull("the producer's buffer stayed full")

            api.span_producer.send = full  # what a full producer buffer does after server.ingest_wait_s
            refused = client.post("/v1/traces", content=second_half[-1], headers=OTLP_JSON)
            assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
            api.span_producer.send = send
            assert not api.traces.aggregator.has_open() and api.traces.aggregator.edges == {}  # nothing folded here
            anomalies = wait_for(
                lambda: store_rows(store, "SELECT s.name, s.labels, a.ts, a.value FROM anomalies a JOIN series s ON s.id = a.series_id"),
                lambda rows: {r[0] for r in rows} >= {"span_latency_p95_ms", "edge_latency_p95_ms"}, 60)
            topology = wait_for(lambda: client.get("/api/v1/topology").json()["edges"], lambda e: e, 30)
    finally:
        stop_a.set()
        stop_b.set()
        thread_a.join(60)
        thread_b.join(60)
    expected = _expected(first_half + second_half)
    regression_end = T0 + INTERVAL * (REGRESSION + 1)
    found = {}
    for name, labels, ts, value in anomalies:
        labels = json_value(labels)
        key = f"{name}:{labels['service']}" if name == "span_latency_p95_ms" else name
        found[(key, ts)] = value
    assert found[("span_latency_p95_ms:payments", regression_end)] == expected[("span_latency_p95_ms:payments", regression_end)]
    assert found[("edge_latency_p95_ms", regression_end)] == expected[("edge_latency_p95_ms", regression_end)]
    assert all(ts == regression_end for _, ts in found)  # calm intervals: no anomaly, none emitted twice
    events = store_rows(store, "SELECT title, labels FROM change_events WHERE kind = 'topology'")
    assert [e[0] for e in events] == ["new dependency: checkout calls payments"]  # once, though two workers owned it
    (edge,) = topology
    assert (edge["caller"], edge["callee"], edge["source"]) == ("checkout", "payments", "traced")
    assert edge["calls"] >= (CALM + 1) * 12  # replayed spans may count twice in the running total
    (dead,) = read_topic(kafka_bootstrap, settings.kafka.topics.dead_letter)
    assert dead.value == b'{"v": 1, "names": []}' and dict(dead.headers)["aiops.topic"] == settings.kafka.topics.spans.encode()
    parts = store_rows(store, "SELECT name FROM checkpoints WHERE name LIKE 'service-map:%'")
    assert parts and all(f"sbs-{tag}" in p[0] for p in parts)
