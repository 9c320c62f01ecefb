"""`aiops worker` over a real broker (Tansu, started by the `kafka_bootstrap` fixture).

In-process workers for what needs a seam (a replay of stored but uncommitted records); worker
processes (`python -m aiops worker`) for kill -9 and for two workers splitting partitions.
Every wait is `wait_for` with a generous timeout; no assertion is about time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import numpy as np
import pytest
import yaml
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from sqlalchemy import text

from aiops.settings import Settings
from aiops.store import StoreEngine
from aiops.store.schema import metadata
from aiops.worker import Worker
from detectors.checkpoint import unpack
from detectors.types import MetricBatch
from helpers import read_topic, wait_for
from ingest.kafka_bus import MetricProducer, create_topics
from ingest.kafka_codec import RecordCodec
from ingest.registry import SeriesRegistry, series_key

pytestmark = pytest.mark.kafka

PARTITIONS = 3
T0 = 1.7e9


def _config(bootstrap: str, store_url: str, tag: str, **kafka) -> dict:
    return {
        "data_dir": "data",
        "store": {"url": store_url},
        "logging": {"format": "json", "level": "info"},
        "kafka": {
            "bootstrap": bootstrap,
            "topics": {"metrics": f"m-{tag}", "dead_letter": f"dead-{tag}", "anomalies": f"anom-{tag}", "alerts": f"alerts-{tag}"},
            "group": f"g-{tag}", "partitions": PARTITIONS, "session_timeout_ms": 6000, "checkpoint_every_s": 1.0,
            **kafka,
        },
        "detection": {"default": {"detector": "ewma_zscore", "params": {"warmup": 30}}},
        "forecasting": {"enabled": False},
        "remediation": {"executor": False},
    }


class Fleet:
    """Series `cpu{host=h<i>}`, a producer of steps (one point per series), spikes where asked."""

    def __init__(self, bootstrap: str, topic: str, n_series: int, seed: int = 0) -> None:
        self.registry = SeriesRegistry()
        self.keys = [series_key("cpu", {"host": f"h{i}"}) for i in range(n_series)]
        self.ids = np.array([self.registry.intern(k) for k in self.keys])
        self.partition = RecordCodec(self.registry).partitions_of(self.ids, PARTITIONS)
        self.producer = MetricProducer(bootstrap, topic, self.registry)
        self.rng = np.random.default_rng(seed)
        self.records = 0

    def step(self, t: int, spikes: tuple[int, ...] = (), height: float = 500.0) -> None:
        values = 50 + self.rng.normal(0, 1, len(self.ids))
        values[list(spikes)] = height
        self.records += self.producer.send(MetricBatch.from_arrays(self.ids, np.full(len(self.ids), T0 + 10.0 * t), values))

    def close(self) -> None:
        self.producer.flush()
        self.producer.close()


def _count(store: StoreEngine, sql: str) -> list:
    with store.begin() as conn:
        return conn.execute(text(sql)).fetchall()


def _committed(bootstrap: str, group: str, topic: str) -> int:
    """Offsets committed by the group over the topic's partitions (offsets start at 0: a record count)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return sum(consumer.committed(TopicPartition(topic, p)) or 0 for p in range(PARTITIONS))
    finally:
        consumer.close()


@pytest.fixture
def tag() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
def pg_url(pg_database) -> str:
    """The session's PostgreSQL test database, emptied: worker processes share it."""
    store = StoreEngine(pg_database)
    with store.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(t.name for t in metadata.sorted_tables)} RESTART IDENTITY CASCADE"))
    store.close()
    return pg_database


def _start(worker: Worker, before_run=lambda: None) -> tuple[threading.Event, threading.Thread]:
    worker.start()  # the store is migrated and the consumer subscribed before the test reads either
    before_run()
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    return stop, thread


# -- in-process ------------------------------------------------------------------------------------


def test_points_become_anomalies_and_alerts_published_downstream_while_poison_goes_to_dead_letter(
    kafka_bootstrap, tag, tmp_path
):
    config = _config(kafka_bootstrap, f"sqlite:///{tmp_path / 'aiops.db'}", tag,
                     mappings=[{"topic": f"team-{tag}", "name": "metric", "labels": "tags", "value": "v", "ts": "t"}])
    settings = Settings.model_validate(config)
    topics = settings.kafka.topics
    create_topics(kafka_bootstrap, {topics.metrics: PARTITIONS, topics.dead_letter: 1, topics.anomalies: 1,
                                    topics.alerts: 1, f"team-{tag}": 1})
    worker = Worker(settings)
    stop, thread = _start(worker)
    fleet = Fleet(kafka_bootstrap, topics.metrics, 20)
    raw = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    try:
        for t in range(60):
            fleet.step(t, spikes=(3,) if t == 50 else (7,) if t == 55 else ())
            if t == 20:  # poison in the middle of the stream: not our record format
                raw.send(topics.metrics, b"this is not a metric record", partition=0)
        for t in range(40):  # another team's topic, read through a field mapping
            raw.send(f"team-{tag}", json.dumps({"metric": "queue", "tags": {"q": "jobs"}, "v": 500 if t == 39 else 5 + t % 3,
                                                 "t": T0 + 10 * t}).encode())
        raw.send(f"team-{tag}", b'{"metric": "queue", "v": "lots"}')  # does not match: dead letter too
        fleet.close()
        raw.flush()
        store = worker.service.store
        alerts = wait_for(lambda: _count(store, "SELECT labels, count FROM alerts ORDER BY id"), lambda r: len(r) == 3, 60)
        records = fleet.records + 1
        assert wait_for(lambda: _committed(kafka_bootstrap, settings.kafka.group, topics.metrics), lambda n: n == records, 30) == records
    finally:
        stop.set()
        thread.join(60)
        raw.close()
    assert sorted((json.loads(a[0]) if isinstance(a[0], str) else a[0] for a in alerts), key=json.dumps) == sorted(
        [{"__name__": "cpu", "host": "h3"}, {"__name__": "cpu", "host": "h7"}, {"__name__": "queue", "q": "jobs"}],
        key=json.dumps)
    assert [a[1] for a in alerts] == [1, 1, 1]
    assert worker.points == 60 * 20 + 40

    dead = read_topic(kafka_bootstrap, topics.dead_letter, 2)
    headers = [dict(d.headers) for d in dead]
    assert sorted(d.value for d in dead) == [b"this is not a metric record", b'{"metric": "queue", "v": "lots"}']
    assert {h["aiops.topic"].decode() for h in headers} == {topics.metrics, f"team-{tag}"}
    assert all(h["aiops.error"] for h in headers)
    anomalies = [json.loads(m.value) for m in read_topic(kafka_bootstrap, topics.anomalies, 3)]
    assert sorted((a["name"], a["value"]) for a in anomalies) == [("cpu", 500.0), ("cpu", 500.0), ("queue", 500.0)]
    events = [json.loads(m.value) for m in read_topic(kafka_bootstrap, topics.alerts, 3)]
    assert sorted(e["event"] for e in events) == ["opened"] * 3


def test_a_replay_of_stored_but_uncommitted_records_stores_nothing_twice(kafka_bootstrap, tag, tmp_path, monkeypatch):
    settings = Settings.model_validate(_config(kafka_bootstrap, f"sqlite:///{tmp_path / 'aiops.db'}", tag, checkpoint_every_s=0))
    topics = settings.kafka.topics
    create_topics(kafka_bootstrap, {topics.metrics: PARTITIONS, topics.dead_letter: 1, topics.anomalies: 1, topics.alerts: 1})
    fleet = Fleet(kafka_bootstrap, topics.metrics, 10)
    for t in range(60):
        fleet.step(t, spikes=(2,) if t in (45, 52) else ())
    fleet.producer.flush()

    crashing = Worker(settings)  # stores effects, then "crashes" before committing or checkpointing anything
    monkeypatch.setattr(crashing, "_commit_done", lambda: None)
    monkeypatch.setattr(crashing, "_checkpoint", lambda tps: None)
    stop, thread = _start(crashing)
    store = StoreEngine(settings.store_url)
    try:
        wait_for(lambda: crashing.points, lambda n: n == 600, 60)
    finally:
        stop.set()
        thread.join(60)
    assert _count(store, "SELECT count FROM alerts") == [(2,)]
    assert _committed(kafka_bootstrap, settings.kafka.group, topics.metrics) == 0

    survivor = Worker(settings)  # everything comes again, from offset 0, to a cold worker
    stop, thread = _start(survivor)
    try:
        wait_for(lambda: survivor.points, lambda n: n == 600, 60)
        fleet.step(60, spikes=(2,), height=1e5)  # new data after the replay is stored as usual
        fleet.close()
        wait_for(lambda: _count(store, "SELECT count(*) FROM anomalies"), lambda r: r == [(3,)], 30)
    finally:
        stop.set()
        thread.join(60)
    assert _count(store, "SELECT count(*), max(count) FROM alerts") == [(1, 3)]
    assert sorted(r[0] for r in _count(store, "SELECT ts FROM anomalies")) == [T0 + 450, T0 + 520, T0 + 600]
    assert _committed(kafka_bootstrap, settings.kafka.group, topics.metrics) == fleet.records


def test_a_worker_behind_pauses_its_partitions_and_resumes_when_drained(kafka_bootstrap, tag, tmp_path):
    settings = Settings.model_validate(_config(kafka_bootstrap, f"sqlite:///{tmp_path / 'aiops.db'}", tag,
                                               queue_records=2, coalesce_records=1, max_poll_records=8))
    topics = settings.kafka.topics
    create_topics(kafka_bootstrap, {topics.metrics: PARTITIONS, topics.dead_letter: 1, topics.anomalies: 1, topics.alerts: 1})
    fleet = Fleet(kafka_bootstrap, topics.metrics, 10)
    for t in range(20):
        fleet.step(t)
    fleet.close()
    worker = Worker(settings)
    slow = worker.pipeline.process

    def process(*args, **kwargs):  # detection slower than the broker delivers
        threading.Event().wait(0.05)
        return slow(*args, **kwargs)

    worker.pipeline.process = process
    calls: list[str] = []

    def spy() -> None:
        pause, resume = worker.consumer.pause, worker.consumer.resume
        worker.consumer.pause = lambda *a: calls.append("pause") or pause(*a)
        worker.consumer.resume = lambda *a: calls.append("resume") or resume(*a)

    stop, thread = _start(worker, before_run=spy)
    try:
        wait_for(lambda: worker.points, lambda n: n == 200, 60)
    finally:
        stop.set()
        thread.join(60)
    assert worker.points == 200
    assert calls[:2] == ["pause", "resume"] and len(calls) >= 2


# -- worker processes ------------------------------------------------------------------------------


class WorkerProcess:
    """`python -m aiops worker` with its JSON log in a file."""

    def __init__(self, config_path: Path, log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([sys.executable, "-m", "aiops", "worker", "--config", str(config_path)],
                                     stdout=subprocess.DEVNULL, stderr=self._log, env=env)

    def assignments(self, topic_prefix: str = "m-") -> list[list[str]]:
        """The partitions of each assignment, of the metrics topic (workers own logs partitions too)."""
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if '"partitions assigned"' in line:
                out.append([p for p in json.loads(line)["partitions"] if f"topic='{topic_prefix}" in p])
        return out

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self._log.close()

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            return -9
        finally:
            self._log.close()


def _write_config(tmp_path: Path, config: dict) -> Path:
    path = tmp_path / "aiops.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _checkpointed_offsets(store: StoreEngine, group: str) -> dict[str, int]:
    with store.begin() as conn:
        rows = conn.execute(text("SELECT name, data FROM checkpoints WHERE name LIKE :p"), {"p": f"partition:{group}:%"})
        return {row.name: int(unpack(bytes(row.data))["offset"]) for row in rows}


def test_a_worker_killed_mid_stream_and_restarted_loses_no_point_and_duplicates_no_alert(kafka_bootstrap, tag, tmp_path, pg_url):
    config = _config(kafka_bootstrap, pg_url, tag)
    path = _write_config(tmp_path, config)
    topics = Settings.model_validate(config).kafka.topics
    create_topics(kafka_bootstrap, {topics.metrics: PARTITIONS, topics.dead_letter: 1, topics.anomalies: 1, topics.alerts: 1})
    store = StoreEngine(pg_url)
    fleet = Fleet(kafka_bootstrap, topics.metrics, 30)
    spikes = {40: 1, 48: 5, 56: 9, 64: 13, 72: 17, 80: 21}  # step → series
    first = WorkerProcess(path, tmp_path / "first.log")
    second = None
    try:
        for t in range(50):
            fleet.step(t, spikes=(spikes[t],) if t in spikes else ())
        fleet.producer.flush()
        wait_for(lambda: _count(store, "SELECT count(*) FROM anomalies"), lambda r: r == [(2,)], 90)
        wait_for(lambda: len(_checkpointed_offsets(store, config["kafka"]["group"])), lambda n: n == PARTITIONS, 30)
        producing = threading.Thread(target=lambda: [fleet.step(t, spikes=(spikes[t],) if t in spikes else ())
                                                     for t in range(50, 90)])
        producing.start()  # the stream goes on while the worker dies
        first.kill()
        second = WorkerProcess(path, tmp_path / "second.log")
        producing.join(60)
        fleet.close()
        anomalies = wait_for(lambda: _count(store, "SELECT a.ts, s.labels FROM anomalies a JOIN series s ON s.id = a.series_id"),
                             lambda r: len(r) >= len(spikes), 120)
        committed = wait_for(lambda: _committed(kafka_bootstrap, config["kafka"]["group"], topics.metrics),
                             lambda n: n == fleet.records, 60)
        assert second.terminate() == 0  # SIGTERM: drain, commit, checkpoint, leave
    finally:
        first.proc.kill()
        if second is not None:
            second.proc.kill()
    assert committed == fleet.records  # every record processed and committed: no point lost
    assert sum(_checkpointed_offsets(store, config["kafka"]["group"]).values()) == fleet.records  # state saved at exit
    labels = lambda raw: json.loads(raw) if isinstance(raw, str) else raw  # noqa: E731
    assert sorted((ts, labels(lab)["host"]) for ts, lab in anomalies) == sorted(
        (T0 + 10.0 * t, f"h{s}") for t, s in spikes.items())  # each spike once: none lost, none stored twice
    alerts = _count(store, "SELECT labels, count, state FROM alerts")
    assert sorted(labels(a[0])["host"] for a in alerts) == sorted(f"h{s}" for s in spikes.values())
    assert {(a[1], a[2]) for a in alerts} == {(1, "firing")}


def test_two_workers_split_the_partitions_and_the_survivor_takes_over_warm(kafka_bootstrap, tag, tmp_path, pg_url):
    config = _config(kafka_bootstrap, pg_url, tag)
    path = _write_config(tmp_path, config)
    group = config["kafka"]["group"]
    topics = Settings.model_validate(config).kafka.topics
    create_topics(kafka_bootstrap, {topics.metrics: PARTITIONS, topics.dead_letter: 1, topics.anomalies: 1, topics.alerts: 1})
    store = StoreEngine(pg_url)
    fleet = Fleet(kafka_bootstrap, topics.metrics, 30)
    a = WorkerProcess(path, tmp_path / "a.log")
    b = None
    try:
        wait_for(a.assignments, lambda got: len(got) >= 1, 60)
        b = WorkerProcess(path, tmp_path / "b.log")
        owned = wait_for(lambda: (a.assignments()[-1:], b.assignments()[-1:]),
                         lambda ab: ab[1] and ab[0] and len(ab[0][0]) + len(ab[1][0]) == PARTITIONS, 60)
        b_partitions = {int(p.rsplit("partition=", 1)[1].rstrip(")")) for p in owned[1][0]}
        assert 0 < len(b_partitions) < PARTITIONS  # split between the two
        for t in range(40):  # warm-up: 40 points a series, past the detectors' 30
            fleet.step(t)
        fleet.producer.flush()
        wait_for(lambda: _committed(kafka_bootstrap, group, topics.metrics), lambda n: n == fleet.records, 60)
        wanted = {f"partition:{group}:{topics.metrics}:{p}" for p in range(PARTITIONS)}
        ends = {f"partition:{group}:{topics.metrics}:{p}": 40 for p in range(PARTITIONS)}  # one record a step each
        wait_for(lambda: _checkpointed_offsets(store, group), lambda got: set(got) == wanted and got == ends, 30)
        b.kill()  # B dies: its partitions wait for its session to expire, then go to A with B's checkpoints
        wait_for(a.assignments, lambda got: len(got[-1]) == PARTITIONS, 60)
        victim = int(np.flatnonzero(np.isin(fleet.partition, list(b_partitions)))[0])
        fleet.step(40, spikes=(victim,))  # right after the takeover: only warm state can flag it
        fleet.close()
        alerts = wait_for(lambda: _count(store, "SELECT labels FROM alerts"), lambda r: len(r) >= 1, 60)
        assert a.terminate() == 0
    finally:
        a.proc.kill()
        if b is not None:
            b.proc.kill()
    hosts = [(json.loads(r[0]) if isinstance(r[0], str) else r[0])["host"] for r in alerts]
    assert hosts == [f"h{victim}"]


# -- the API in front: server.mode api-only ---------------------------------------------------------


def test_api_only_ingest_produces_to_kafka_and_answers_503_when_kafka_cannot_take_it(kafka_bootstrap, tag, tmp_path):
    from fastapi.testclient import TestClient

    from aiops.api import create_app
    from aiops.service import Service
    from ingest.bus import BusFull
    from ingest.kafka_bus import MetricConsumer

    config = _config(kafka_bootstrap, f"sqlite:///{tmp_path / 'aiops.db'}", tag)
    config["server"] = {"mode": "api-only"}
    settings = Settings.model_validate(config)
    service = Service(settings)
    points = [{"name": "cpu", "labels": {"host": f"h{i % 7}"}, "ts": T0 + i, "value": float(i)} for i in range(70)]
    with TestClient(create_app(service)) as client:
        assert client.get("/readyz").status_code == 200
        assert client.post("/api/v1/metrics", json=points).json()["accepted"] == 70
        service.producer.flush()

        def full(batch):
            raise BusFull("the producer's buffer stayed full")

        service.producer.send = full  # what a full producer buffer does after server.ingest_wait_s
        refused = client.post("/api/v1/metrics", json=points[:3])
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert service.pipeline.running is False  # no detection in this process

    registry = SeriesRegistry()
    consumer = MetricConsumer(kafka_bootstrap, [settings.kafka.topics.metrics], f"check-{tag}", registry,
                              dead_letter_topic=settings.kafka.topics.dead_letter, session_timeout_ms=6000)
    got: list = []
    try:
        wait_for(lambda: got.extend(consumer.poll(0.5)) or sum(len(r.batch) for r in got), lambda n: n >= 70, 30)
    finally:
        consumer.close()
    batch = MetricBatch.concat([r.batch for r in got])
    assert sorted(batch.value.tolist()) == [float(i) for i in range(70)]
    assert {registry.key(int(s)) for s in batch.series_id} == {series_key("cpu", {"host": f"h{i}"}) for i in range(7)}
    assert len({r.partition for r in got}) > 1  # spread over partitions by series
