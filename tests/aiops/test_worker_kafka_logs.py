"""Log records over Kafka (Tansu): api-only POST /v1/logs → logs topic → a worker's per-partition miner →
count points on the metrics topic → detected; new templates alerted with examples; state survives a restart.
"""

from __future__ import annotations

import json
import uuid

import msgspec
import pytest
from fastapi.testclient import TestClient
from kafka import KafkaProducer

from aiops.api import create_app
from aiops.logmonitor import LogMonitor
from aiops.service import Service, topic_partitions
from aiops.settings import Settings
from aiops.store import StoreEngine
from aiops.worker import Worker
from helpers import json_value, read_topic, run_worker, store_rows, wait_for
from ingest.bus import BusFull
from ingest.kafka_bus import create_topics

pytestmark = pytest.mark.kafka

PARTITIONS = 3
T0 = 1.7e9
JSON = {"Content-Type": "application/json"}


def _config(bootstrap: str, store_url: str, tag: str) -> dict:
    return {
        "data_dir": "data",
        "store": {"url": store_url},
        "server": {"mode": "api-only"},
        "kafka": {
            "bootstrap": bootstrap,
            "topics": {"metrics": f"m-{tag}", "logs": f"l-{tag}", "dead_letter": f"dead-{tag}",
                       "anomalies": f"anom-{tag}", "alerts": f"alerts-{tag}"},
            "group": f"g-{tag}", "partitions": PARTITIONS, "session_timeout_ms": 6000, "checkpoint_every_s": 1.0,
        },
        "logs": {"interval_s": 10, "grace_s": 0, "warmup_records": 50},
        "detection": {"default": {"detector": "ewma_zscore", "params": {"warmup": 30}}},
        "forecasting": {"enabled": False},
        "remediation": {"executor": False},
    }


def _export(lines: list[tuple[float, str, int]], service: str = "checkout") -> bytes:
    records = [{"timeUnixNano": str(int(t * 1e9)), "severityNumber": sev, "body": {"stringValue": body}}
               for t, body, sev in lines]
    return msgspec.json.encode({"resourceLogs": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}},
                                    {"key": "host.name", "value": {"stringValue": f"{service}-1"}}]},
        "scopeLogs": [{"scope": {"name": "app"}, "logRecords": records}],
    }]})


def _logins(interval: int, n: int) -> list[tuple[float, str, int]]:
    return [(T0 + 10 * interval + 0.1 * j, f"user u{interval * 100 + j} logged in from 10.0.0.{j}", 9) for j in range(n)]


def _saved(store: StoreEngine) -> dict[str, dict]:
    """The logs partitions' checkpoints (aiops.partition_logs), as JSON."""
    return {r[0]: json.loads(bytes(r[1])) for r in store_rows(store, "SELECT name, data FROM checkpoints WHERE name LIKE 'logs:%'")}


def test_logs_flow_from_the_api_through_a_worker_to_alerts_and_the_miner_state_survives_a_restart(
    kafka_bootstrap, tmp_path
):
    tag = uuid.uuid4().hex[:10]
    settings = Settings.model_validate(_config(kafka_bootstrap, f"sqlite:///{tmp_path / 'aiops.db'}", tag))
    topics = settings.kafka.topics
    create_topics(kafka_bootstrap, topic_partitions(settings.kafka))
    api = Service(settings)
    with TestClient(create_app(api)) as client:
        for start in range(0, 45, 15):  # 45 calm intervals: past warm-up, detectors warm
            lines = [line for i in range(start, start + 15) for line in _logins(i, 5 + i % 3)]
            assert client.post("/v1/logs", content=_export(lines), headers=JSON).status_code == 200
        burst = _logins(45, 60) + [(T0 + 465, "disk /dev/sda1 failed: password=hunter2 code 5", 17)]
        assert client.post("/v1/logs", content=_export(burst), headers=JSON).json() == {}
        assert client.post("/v1/logs", content=_export(_logins(47, 5)), headers=JSON).status_code == 200  # closes 46
        assert api.logs.monitor.miner.templates() == {}  # api-only: nothing mined in the API process
        send = api.log_producer.send

        def full(records):
            raise BusFull("the producer's buffer stayed full")

        api.log_producer.send = full  # what a full producer buffer does after server.ingest_wait_s
        refused = client.post("/v1/logs", content=_export(_logins(47, 1)), headers=JSON)
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        api.log_producer.send = send
    raw = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    raw.send(topics.logs, key=b'{"service":"x"}', value=b'{"v": 1, "body": "not columns"}')  # poison
    raw.flush()
    raw.close()

    worker = Worker(settings)
    stop, thread = run_worker(worker)
    store = worker.service.store
    try:
        anomalies = wait_for(lambda: store_rows(store, "SELECT s.name, s.labels, a.ts, a.detector, a.explanation FROM anomalies a "
                                                  "JOIN series s ON s.id = a.series_id WHERE s.name = 'log_template_count'"),
                             lambda r: len(r) >= 2, 60)
        wait_for(lambda: worker.log_records, lambda n: n == sum(5 + i % 3 for i in range(45)) + 61 + 5, 30)
    finally:
        stop.set()
        thread.join(60)
    by_detector = {a[3]: a for a in anomalies}
    new = by_detector.pop("log_new_template")
    log = json_value(new[4])["log"]
    assert log["new_template"] is True and log["template"].startswith("disk")
    assert log["examples"] == ["disk /dev/sda1 failed: password=*** code 5"]
    assert json_value(new[1])["service"] == "checkout"
    burst_anomaly = by_detector.pop("ewma_zscore")  # the burst of logins, detected on the count points
    assert burst_anomaly[2] == T0 + 460 and not by_detector
    burst_log = json_value(burst_anomaly[4])["log"]
    assert "logged in" in burst_log["template"] and len(burst_log["examples"]) == 3
    alerts = store_rows(store, "SELECT labels FROM alerts")
    assert len([a for a in alerts if json_value(a[0]).get("__name__") == "log_template_count"]) == 2
    assert worker.consumer is None  # stopped: the state was checkpointed at shutdown
    (name, state), = _saved(store).items()  # one source: one logs partition
    assert state["offset"] >= 1

    got = read_topic(kafka_bootstrap, topics.dead_letter)
    assert got[0].value == b'{"v": 1, "body": "not columns"}'
    assert dict(got[0].headers)["aiops.topic"] == topics.logs.encode()

    saved_monitor = LogMonitor()
    saved_monitor.load_state_dict(state["monitor"])
    ids_before = saved_monitor.miner.templates()
    disk = [t for t, text in ids_before.items() if text.startswith("disk")]
    second = Worker(settings)  # a new process: the miner comes from the checkpoint
    stop, thread = run_worker(second)
    try:
        with TestClient(create_app(Service(settings))) as client:
            again = _logins(48, 5) + [(T0 + 485, "disk /dev/sda1 failed: password=hunter2 code 5", 17)]
            client.post("/v1/logs", content=_export(again), headers=JSON)
        wait_for(lambda: second.log_records, lambda n: n == 6, 60)
    finally:
        stop.set()
        thread.join(60)
    (_, after), = _saved(store).items()
    assert after["offset"] > state["offset"]
    monitor = LogMonitor()
    monitor.load_state_dict(after["monitor"])
    assert monitor.miner.templates() == ids_before  # same ids, same templates: the new lines matched them
    assert len(disk) == 1 and monitor.miner.count(disk[0]) == 2
    assert len(store_rows(store, "SELECT id FROM anomalies WHERE detector = 'log_new_template'")) == 1  # not new again
