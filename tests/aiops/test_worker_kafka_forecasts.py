"""Capacity forecasts in `aiops worker` over a real broker (Tansu, the `kafka_bootstrap` fixture).

A disk filling towards 100 % is produced over Kafka; the worker owning its partition keeps its
history, forecasts it, opens a predictive alert (stored, published to the alerts topic) and stores
the forecast under the store's series id, readable through an api-only service's GET /api/v1/forecasts.
A second worker taking the partitions over starts from the checkpointed history, not from nothing.
Timestamps are synthetic (the last minutes before now, 10 s buckets); forecasts run every 0.3 s.
"""

from __future__ import annotations

import json
import time
import uuid

import numpy as np
import pytest
from fastapi.testclient import TestClient
from kafka import KafkaConsumer

from aiops.alerts import fingerprint_of
from aiops.api import create_app
from aiops.service import Service
from aiops.settings import Settings
from aiops.store import StoreEngine
from aiops.worker import Worker
from detectors.types import MetricBatch
from helpers import json_value, run_worker, store_rows, wait_for
from ingest.kafka_bus import MetricProducer, create_topics
from ingest.registry import SeriesRegistry, series_key

pytestmark = pytest.mark.kafka

PARTITIONS = 3
FILLING = series_key("disk_used_percent", {"host": "filling"})
STEADY = series_key("disk_used_percent", {"host": "steady"})


def _settings(bootstrap: str, store_url: str, tag: str) -> Settings:
    return Settings.model_validate({
        "data_dir": "data",
        "store": {"url": store_url},
        "kafka": {
            "bootstrap": bootstrap,
            "topics": {"metrics": f"m-{tag}", "dead_letter": f"dead-{tag}", "anomalies": f"anom-{tag}", "alerts": f"alerts-{tag}"},
            "group": f"g-{tag}", "partitions": PARTITIONS, "session_timeout_ms": 6000, "checkpoint_every_s": 1.0,
        },
        "detection": {"default": {"detector": "ewma_zscore", "params": {"warmup": 1000}}},  # only forecasts alert here
        "forecasting": {"step_s": 10, "history_days": 600 / 86400, "every_s": 0.3, "rules": [{
            "selector": '{__name__="disk_used_percent"}', "threshold": 100, "method": "linear", "window_s": 300,
            "lead_time_s": 3600, "horizon_s": 3600}]},
        "remediation": {"executor": False},
    })


def _produce(bootstrap: str, topic: str, now: float) -> None:
    """Nine minutes of both disks, one point each 10 s up to `now`: the filling one gains 1 % a step
    from 40 % (94 % at `now`, 100 % a minute later), the steady one stays at 50 %."""
    registry = SeriesRegistry()
    ids = np.array([registry.intern(FILLING), registry.intern(STEADY)])
    producer = MetricProducer(bootstrap, topic, registry)
    try:
        for k in range(55):
            ts = np.full(2, now - 10.0 * (54 - k))
            producer.send(MetricBatch.from_arrays(ids, ts, np.array([40.0 + k, 50.0])))
    finally:
        producer.flush()
        producer.close()


def _events(bootstrap: str, topic: str, fingerprint: str) -> list[dict]:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False,
                             group_id=f"reader-{uuid.uuid4().hex[:8]}", session_timeout_ms=6000, heartbeat_interval_ms=2000)
    got: list = []
    try:
        wait_for(lambda: got.extend(json.loads(r.value) for rs in consumer.poll(timeout_ms=500).values() for r in rs)
                 or [e for e in got if e["fingerprint"] == fingerprint], bool, 20)
    finally:
        consumer.close()
    return [e for e in got if e["fingerprint"] == fingerprint]


def test_a_filling_disk_produced_over_kafka_gets_a_predictive_alert_and_a_stored_forecast_from_its_worker(
    kafka_bootstrap, tmp_path
):
    tag = uuid.uuid4().hex[:10]
    settings = _settings(kafka_bootstrap, f"sqlite:///{tmp_path / 'aiops.db'}", tag)
    topics = settings.kafka.topics
    create_topics(kafka_bootstrap, {topics.metrics: PARTITIONS, topics.dead_letter: 1, topics.anomalies: 1, topics.alerts: 1})
    store = StoreEngine(settings.store_url)
    now = time.time()
    _produce(kafka_bootstrap, topics.metrics, now)

    first = Worker(settings)
    stop, thread = run_worker(first)
    try:
        alerts = wait_for(lambda: store_rows(store, "SELECT labels, severity, state FROM alerts WHERE kind = 'predictive'"),
                          lambda r: len(r) >= 1, 60)
        stored = wait_for(lambda: store_rows(store, "SELECT s.labels, f.likely, f.model, f.created_at FROM forecasts f "
                                               "JOIN series s ON s.id = f.series_id ORDER BY s.id"), lambda r: len(r) == 2, 30)
    finally:
        stop.set()
        thread.join(60)  # shutdown checkpoints every owned partition, the forecast history with it
    assert [(json_value(a[0])["host"], a[2]) for a in alerts] == [("filling", "firing")]
    by_host = {json_value(r[0])["host"]: r for r in stored}
    assert by_host["steady"][1] is None and by_host["filling"][2] == "linear"
    assert abs(by_host["filling"][1] - (now + 60)) < 30  # 100 % a minute after the last point
    events = _events(kafka_bootstrap, topics.alerts, fingerprint_of("predictive", FILLING))
    assert events[0]["event"] == "opened" and events[0]["labels"]["host"] == "filling"

    api_settings = settings.model_copy(update={"server": settings.server.model_copy(update={"mode": "api-only"})})
    with TestClient(create_app(Service(api_settings))) as client:  # the API reads what the workers stored
        [row] = client.get("/api/v1/forecasts", params={"label": "host=filling"}).json()["items"]
    assert row["name"] == "disk_used_percent" and row["threshold"] == 100 and row["likely"] == pytest.approx(by_host["filling"][1])

    second = Worker(settings)  # takes every partition over; nothing new arrives for it to learn from
    stop, thread = run_worker(second)
    try:
        assert wait_for(lambda: len(second.service.forecasts.history), lambda n: n == 2, 60) == 2
        newer = wait_for(lambda: store_rows(store, "SELECT f.created_at, f.likely FROM forecasts f JOIN series s "
                                              "ON s.id = f.series_id WHERE s.labels LIKE '%filling%'"),
                         lambda r: r and r[0][0] > by_host["filling"][3], 30)
    finally:
        stop.set()
        thread.join(60)
    assert newer[0][1] == pytest.approx(by_host["filling"][1])  # the same history, so the same forecast
    assert second.points == 0  # it received no point: the history came with the partitions
    assert store_rows(store, "SELECT count(*), max(state) FROM alerts WHERE kind = 'predictive'") == [(1, "firing")]
