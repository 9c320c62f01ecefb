"""A zombie worker over a real broker (Tansu): a successor claims its partitions, its next write is fenced.

The takeover is the successor's claim made directly in the store while the worker still owns the
partitions in Kafka's eyes — what a successor's assignment does after the zombie's session expired.
"""

from __future__ import annotations

import threading
import time
import uuid

import numpy as np
import pytest
from kafka import KafkaConsumer, TopicPartition
from sqlalchemy import text

from aiops.fencing import PartitionEpochs, PartitionFenced
from aiops.partition_state import load_applied, state_name
from aiops.settings import Settings
from aiops.store import StoreEngine, repository
from aiops.worker import Worker, WorkerError
from detectors.types import MetricBatch
from helpers import wait_for
from ingest.kafka_bus import MetricProducer, create_topics
from ingest.kafka_codec import RecordCodec
from ingest.registry import SeriesRegistry, series_key

pytestmark = pytest.mark.kafka

PARTITIONS = 3
T0 = 1.7e9
SPIKED = 2  # the series index a spike goes to


def _settings(bootstrap: str, store_url: str, tag: str, checkpoint_every_s: float) -> Settings:
    return Settings.model_validate({
        "data_dir": "data",
        "store": {"url": store_url},
        "kafka": {
            "bootstrap": bootstrap,
            "topics": {"metrics": f"m-{tag}", "dead_letter": f"dead-{tag}",
                       "anomalies": f"anom-{tag}", "alerts": f"alerts-{tag}"},
            "group": f"g-{tag}", "partitions": PARTITIONS, "session_timeout_ms": 6000,
            "checkpoint_every_s": checkpoint_every_s,
        },
        "detection": {"default": {"detector": "ewma_zscore", "params": {"warmup": 30}}},
        "forecasting": {"enabled": False},
        "remediation": {"executor": False},
    })


def _committed(bootstrap: str, group: str, tp: TopicPartition) -> int:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return consumer.committed(tp) or 0
    finally:
        consumer.close()


def _stored(store: StoreEngine, group: str, tps: list[TopicPartition]) -> tuple:
    """Everything a worker stores per partition or per batch: anomalies, alerts, applied offsets, state checkpoints."""
    with store.begin() as conn:
        anomalies = conn.execute(text("SELECT series_id, ts FROM anomalies ORDER BY id")).fetchall()
        alerts = conn.execute(text("SELECT fingerprint, count FROM alerts ORDER BY id")).fetchall()
        states = [repository.load_checkpoint(conn, state_name(group, tp)) for tp in tps]
        return anomalies, alerts, load_applied(conn, group, tps), states


@pytest.mark.parametrize("fenced_write", ["batch", "checkpoint"])
def test_a_worker_whose_partitions_a_successor_claimed_stores_nothing_more_and_stops(
    kafka_bootstrap, tmp_path, fenced_write
):
    tag = uuid.uuid4().hex[:10]
    settings = _settings(kafka_bootstrap, f"sqlite:///{tmp_path / 'aiops.db'}", tag,
                         checkpoint_every_s=0 if fenced_write == "batch" else 0.5)
    k = settings.kafka
    create_topics(kafka_bootstrap, {k.topics.metrics: PARTITIONS, k.topics.dead_letter: 1,
                                    k.topics.anomalies: 1, k.topics.alerts: 1})
    registry = SeriesRegistry()
    ids = np.array([registry.intern(series_key("cpu", {"host": f"h{i}"})) for i in range(10)])
    spiked = TopicPartition(k.topics.metrics, int(RecordCodec(registry).partitions_of(ids, PARTITIONS)[SPIKED]))
    tps = [TopicPartition(k.topics.metrics, p) for p in range(PARTITIONS)]
    producer = MetricProducer(kafka_bootstrap, k.topics.metrics, registry)
    rng = np.random.default_rng(0)

    def step(t: int, spike: float | None = None) -> None:
        values = 50 + rng.normal(0, 1, len(ids))
        if spike is not None:
            values[SPIKED] = spike
        producer.send(MetricBatch.from_arrays(ids, np.full(len(ids), T0 + 10.0 * t), values))
        producer.flush()

    for t in range(40):
        step(t, spike=500.0 if t == 35 else None)

    worker = Worker(settings)
    published: list[int] = []
    publish = worker._publish
    worker._publish = lambda anomalies, *a: published.append(len(anomalies)) or publish(anomalies, *a)
    worker.start()
    stop, errors = threading.Event(), []

    def run() -> None:
        try:
            worker.run(stop)
        except Exception as exc:  # handed to the test
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    store = StoreEngine(settings.store_url)
    try:
        wait_for(lambda: worker.points, lambda n: n == 400, 60)
        wait_for(lambda: _committed(kafka_bootstrap, k.group, spiked), lambda n: n == 40, 30)
        if fenced_write == "checkpoint":
            wait_for(lambda: _stored(store, k.group, tps)[3], all, 30)
        held = {tp: worker.epochs.held(tp) for tp in tps}
        with store.begin() as conn:  # a successor takes every partition over, as its assignment would
            claimed = PartitionEpochs(k.group).claim(conn, tps, time.time())
        before = _stored(store, k.group, tps)
        if fenced_write == "batch":
            step(40, spike=1e5)
        thread.join(60)
    finally:
        stop.set()
        thread.join(60)
        producer.close()

    assert not thread.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], WorkerError), errors
    fenced = errors[0].__cause__
    assert isinstance(fenced, PartitionFenced) and fenced.group == k.group
    assert (fenced.mine, fenced.current) == (held[fenced.tp], claimed[fenced.tp]) and fenced.mine < fenced.current
    after = _stored(store, k.group, tps)
    assert after == before  # nothing of the zombie's batch or checkpoint is stored
    assert [ts for _, ts in after[0]] == [T0 + 350] and [count for _, count in after[1]] == [1]
    assert sum(published) == 1  # the fenced batch's anomaly is not published either
    assert _committed(kafka_bootstrap, k.group, spiked) == 40  # the fenced record comes again to the successor
