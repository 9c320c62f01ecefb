"""The Kafka transport: the record codec alone, then producer and consumer against a real Tansu broker."""

from __future__ import annotations

import threading
import time
import uuid

import numpy as np
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaTimeoutError

from detectors.types import MetricBatch
from ingest import kafka_bus
from ingest.kafka_bus import (
    DEAD_LETTER_HEADERS,
    KafkaBusError,
    MetricConsumer,
    MetricProducer,
    RebalanceHooks,
    create_topics,
)
from ingest.kafka_codec import RecordCodec, RecordError
from ingest.registry import SeriesRegistry, series_key

SESSION_MS = 6000  # Tansu holds a join for half of it: never kafka-python's default 45 s in tests


def _registry_with(n_series: int) -> SeriesRegistry:
    reg = SeriesRegistry()
    for i in range(n_series):
        reg.intern(series_key(f"metric_{i % 7}", {"host": f"h{i}", "region": "eu" if i % 2 else "us"}))
    return reg


def _random_batch(rng: np.random.Generator, n_series: int, n: int) -> MetricBatch:
    return MetricBatch.from_arrays(
        rng.integers(0, n_series, n), 1.7e9 + np.sort(rng.uniform(0, 3600, n)), rng.normal(0, 1e6, n)
    )


def _keys(reg: SeriesRegistry, batch: MetricBatch) -> list:
    return [reg.key(int(s)) for s in batch.series_id]


def _names() -> tuple[str, str, str]:
    tag = uuid.uuid4().hex[:10]
    return f"metrics-{tag}", f"metrics-{tag}-dead", f"group-{tag}"


# -- codec, no broker ------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(20))
def test_codec_round_trip_through_another_registry(seed):
    rng = np.random.default_rng(seed)
    n_series = int(rng.integers(1, 300))
    src = _registry_with(n_series)
    batch = _random_batch(rng, n_series, int(rng.integers(0, 5000)))
    records = RecordCodec(src, max_points=int(rng.integers(1, 2000))).encode(batch)
    dst = SeriesRegistry()
    dst.intern(series_key("other", {}))  # ids differ between the two processes' registries
    decoded = MetricBatch.concat([RecordCodec(dst).decode(r) for r in records])
    assert _keys(dst, decoded) == _keys(src, batch)
    np.testing.assert_array_equal(decoded.ts, batch.ts)
    np.testing.assert_array_equal(decoded.value, batch.value)
    assert decoded.series_id.dtype == np.int32


def test_codec_splits_by_partition_stably_and_keeps_order():
    reg = _registry_with(50)
    codec = RecordCodec(reg)
    batch = _random_batch(np.random.default_rng(1), 50, 2000)
    parts = codec.split_by_partition(batch, 4)
    assert sum(len(p) for p in parts.values()) == len(batch)
    again = RecordCodec(reg).partitions_of(np.arange(50), 4)
    for partition, part in parts.items():
        assert (again[part.series_id] == partition).all()
        for sid in np.unique(part.series_id):  # per-series order kept
            np.testing.assert_array_equal(part.ts[part.series_id == sid], batch.ts[batch.series_id == sid])


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda r: b"JUNK" + r[4:], "magic"),
        (lambda r: r[:4] + b"\x09" + r[5:], "version"),
        (lambda r: r[:-1], "header implies"),
        (lambda r: b"{}", "too short"),
        (lambda r: r[:20] + b"X" + r[21:], "series table"),
    ],
)
def test_codec_rejects_malformed_records(mutate, message):
    reg = _registry_with(3)
    record = RecordCodec(reg).encode(MetricBatch.from_arrays([0, 1, 2], [1.7e9] * 3, [1.0, 2.0, 3.0]))[0]
    with pytest.raises(RecordError, match=message):
        RecordCodec(SeriesRegistry()).decode(mutate(record))


def test_codec_rejects_non_finite_values_and_bad_indexes():
    reg = _registry_with(2)
    codec = RecordCodec(reg)
    bad_value = codec.encode(MetricBatch.from_arrays([0, 1], [1.7e9, 1.7e9], [1.0, np.nan]))[0]
    with pytest.raises(RecordError, match="finite"):
        RecordCodec(SeriesRegistry()).decode(bad_value)
    record = bytearray(codec.encode(MetricBatch.from_arrays([0], [1.7e9], [1.0]))[0])
    table_len = int.from_bytes(record[16:20], "little")
    record[20 + table_len : 24 + table_len] = (7).to_bytes(4, "little")
    with pytest.raises(RecordError, match="index out of range"):
        RecordCodec(SeriesRegistry()).decode(bytes(record))


def test_every_exception_and_public_name_is_exported():
    import ingest

    assert {"KafkaBusError"} <= set(kafka_bus.__all__)
    for name in ("KafkaBusError", "RecordError", "MetricConsumer", "MetricProducer", "RecordCodec", "create_topics"):
        assert name in ingest.__all__ and getattr(ingest, name) is not None


def test_sends_from_many_threads_encode_every_series_under_its_own_identity():
    class Recorder:  # the KafkaProducer seam: keeps what would be sent
        def __init__(self) -> None:
            self.sent: list[tuple[int, bytes]] = []

        def partitions_for(self, topic):
            return {0, 1, 2}

        def send(self, topic, value, partition):
            self.sent.append((partition, value))

    src = SeriesRegistry()
    recorder = Recorder()
    producer = MetricProducer("unused:9092", "t", src, producer=recorder)
    batches = []
    for k in range(8):  # each thread brings series of its own, interned as it goes (as the API does)
        ids = [src.intern(series_key("cpu", {"thread": str(k), "host": f"h{i}"})) for i in range(3000)]
        batches.append(MetricBatch.from_arrays(ids, np.full(3000, 1.7e9), np.full(3000, float(k))))
    threads = [threading.Thread(target=producer.send, args=(b,)) for b in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dst = SeriesRegistry()
    codec = RecordCodec(dst)
    decoded = [(p, codec.decode(v)) for p, v in recorder.sent]
    got = sorted((dst.key(int(s)), float(v)) for _, b in decoded for s, v in zip(b.series_id, b.value))
    want = sorted((src.key(int(s)), float(v)) for b in batches for s, v in zip(b.series_id, b.value))
    assert got == want  # each value under the identity it was sent with
    expected_partition = RecordCodec(src).partitions_of(np.arange(len(src)), 3)
    for partition, b in decoded:
        assert all(expected_partition[src.get(dst.key(int(s)))] == partition for s in b.series_id)


# -- against the broker ----------------------------------------------------------------------------


def _consumer(bootstrap, topic, dead, group, registry=None, **kwargs) -> MetricConsumer:
    return MetricConsumer(
        bootstrap, [topic], group, SeriesRegistry() if registry is None else registry, dead_letter_topic=dead, session_timeout_ms=SESSION_MS, **kwargs
    )


def _drain(consumer: MetricConsumer, want_points: int, timeout_s: float = 20.0) -> list:
    got, points = [], 0
    deadline = time.monotonic() + timeout_s
    while points < want_points and time.monotonic() < deadline:
        for r in consumer.poll(0.5):
            got.append(r)
            points += len(r.batch)
    return got


def _settle(consumer: MetricConsumer, timeout_s: float = 15.0) -> list:
    """Poll until the consumer has an assignment, then until a poll brings nothing."""
    got = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        fresh = consumer.poll(0.5)
        got += fresh
        if consumer.assignment() and not fresh:
            break
    return got


@pytest.fixture
def names(kafka_bootstrap):
    topic, dead, group = _names()
    create_topics(kafka_bootstrap, {topic: 3, dead: 1})
    return topic, dead, group


@pytest.mark.kafka
def test_produce_and_consume_every_point_back(kafka_bootstrap, names):
    topic, dead, group = names
    src = _registry_with(200)
    producer = MetricProducer(kafka_bootstrap, topic, src, max_points=500)
    batches = [_random_batch(np.random.default_rng(i), 200, 1000) for i in range(5)]
    records = sum(producer.send(b) for b in batches)
    producer.flush()
    producer.close()
    assert records >= 5 * 3  # split by partition, then capped at 500 points a record

    dst = SeriesRegistry()
    consumer = _consumer(kafka_bootstrap, topic, dead, group, dst)
    try:
        got = _drain(consumer, 5000)
    finally:
        consumer.close()
    assert sum(len(r.batch) for r in got) == 5000
    sent = MetricBatch.concat(batches)
    received = MetricBatch.concat([r.batch for r in got])
    want = sorted(zip(_keys(src, sent), sent.ts.tolist(), sent.value.tolist()))
    have = sorted(zip(_keys(dst, received), received.ts.tolist(), received.value.tolist()))
    assert have == want
    # one series → one partition, and within it the order it was sent in
    partition_of: dict = {}
    for r in got:
        for key in set(_keys(dst, r.batch)):
            assert partition_of.setdefault(key, r.partition) == r.partition
    for key in list(partition_of)[:20]:
        sid_src, sid_dst = src.get(key), dst.get(key)
        np.testing.assert_array_equal(received.ts[received.series_id == sid_dst], sent.ts[sent.series_id == sid_src])
    assert len(set(partition_of.values())) == 3


@pytest.mark.kafka
def test_uncommitted_records_come_again_and_committed_ones_do_not(kafka_bootstrap, names):
    topic, dead, group = names
    src = _registry_with(20)
    producer = MetricProducer(kafka_bootstrap, topic, src)
    producer.send(_random_batch(np.random.default_rng(0), 20, 600))
    producer.flush()

    first = _consumer(kafka_bootstrap, topic, dead, group)
    got = _drain(first, 600)
    first.close()  # nothing committed
    assert sum(len(r.batch) for r in got) == 600

    second = _consumer(kafka_bootstrap, topic, dead, group)
    again = _drain(second, 600)
    assert sorted((r.partition, r.offset) for r in again) == sorted((r.partition, r.offset) for r in got)
    committed = second.commit(again)
    assert sum(committed.values()) == len(again)  # offsets start at 0: next offset = count per partition
    second.close()

    producer.send(_random_batch(np.random.default_rng(1), 20, 30))
    producer.flush()
    producer.close()
    third = _consumer(kafka_bootstrap, topic, dead, group)
    newer = _drain(third, 30)
    newer += _settle(third)
    third.close()
    assert sum(len(r.batch) for r in newer) == 30
    assert all(r.offset >= committed.get(TopicPartition(r.topic, r.partition), 0) for r in newer)


@pytest.mark.kafka
def test_commit_stops_at_the_first_record_not_processed(kafka_bootstrap, names):
    topic, dead, group = names
    raw = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    codec = RecordCodec(_registry_with(1))
    for i in range(4):
        raw.send(topic, codec.encode(MetricBatch.from_arrays([0], [1.7e9 + i], [float(i)]))[0], partition=0)
    raw.flush()
    raw.close()
    consumer = _consumer(kafka_bootstrap, topic, dead, group)
    try:
        got = _drain(consumer, 4)
        assert [r.offset for r in got] == [0, 1, 2, 3]
        assert consumer.commit([got[0], got[2]]) == {TopicPartition(topic, 0): 1}  # 1 not done: 2 waits
        assert consumer.commit([got[1]]) == {TopicPartition(topic, 0): 3}
    finally:
        consumer.close()


@pytest.mark.kafka
def test_poison_record_goes_to_dead_letters_and_valid_ones_flow(kafka_bootstrap, names):
    topic, dead, group = names
    src = _registry_with(1)
    codec = RecordCodec(src)
    raw = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    good = codec.encode(MetricBatch.from_arrays([0, 0], [1.7e9, 1.7e9 + 1], [1.0, 2.0]))[0]
    raw.send(topic, good, partition=1)
    raw.send(topic, b'{"name": "cpu", "value": 1}', key=b"k", partition=1)
    raw.send(topic, good, partition=1)
    raw.flush()
    raw.close()

    consumer = _consumer(kafka_bootstrap, topic, dead, group)
    try:
        got = _drain(consumer, 4)
        assert [r.offset for r in got] == [0, 2]
        assert consumer.dead_letters == 1
        assert consumer.commit(got) == {TopicPartition(topic, 1): 3}  # the poison offset is committed too
    finally:
        consumer.close()

    reader = KafkaConsumer(bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest")
    reader.assign([TopicPartition(dead, 0)])
    letters = []
    deadline = time.monotonic() + 10
    while not letters and time.monotonic() < deadline:
        letters += [m for ms in reader.poll(500).values() for m in ms]
    letters += [m for ms in reader.poll(300).values() for m in ms]  # and nothing more
    reader.close()
    assert len(letters) == 1
    headers = {k: v.decode() for k, v in letters[0].headers}
    assert set(headers) == set(DEAD_LETTER_HEADERS)
    assert letters[0].value == b'{"name": "cpu", "value": 1}' and letters[0].key == b"k"
    assert (headers["aiops.topic"], headers["aiops.partition"], headers["aiops.offset"]) == (topic, "1", "1")
    assert "magic" in headers["aiops.error"]


class _FailingOnce:
    """A dead-letter producer whose first send fails, as when the dead-letter topic is unreachable."""

    def __init__(self, real: KafkaProducer) -> None:
        self.real, self.failed = real, False

    def send(self, *args, **kwargs):
        if not self.failed:
            self.failed = True
            raise KafkaTimeoutError("dead-letter topic unavailable")
        return self.real.send(*args, **kwargs)

    def flush(self, timeout=None):
        self.real.flush(timeout=timeout)

    def close(self, timeout=None):
        self.real.close(timeout=timeout)


@pytest.mark.kafka
def test_a_dead_letter_that_cannot_be_sent_rewinds_the_poll(kafka_bootstrap, names):
    topic, dead, group = names
    codec = RecordCodec(_registry_with(1))
    raw = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    raw.send(topic, codec.encode(MetricBatch.from_arrays([0], [1.7e9], [1.0]))[0], partition=0)
    raw.send(topic, b"poison", partition=0)
    raw.flush()
    dlq = _FailingOnce(raw)
    consumer = _consumer(kafka_bootstrap, topic, dead, group, producer=dlq)
    try:
        deadline = time.monotonic() + 15
        with pytest.raises(KafkaBusError, match="dead letter"):
            while time.monotonic() < deadline:
                consumer.poll(0.5)
        again = _drain(consumer, 1)
        assert [r.offset for r in again] == [0] and consumer.dead_letters == 1
        assert consumer.commit(again) == {TopicPartition(topic, 0): 2}
    finally:
        consumer.close()  # closes the dead-letter producer too


@pytest.mark.kafka
def test_two_consumers_split_the_partitions_and_a_revoke_hook_can_commit(kafka_bootstrap, names):
    topic, dead, group = names
    events: list[tuple[str, str, int]] = []

    received: dict[str, list] = {"a": [], "b": []}
    members: dict[str, MetricConsumer] = {}

    def revoke(who, tps):
        events.append((who, "revoke", len(tps)))
        members[who].commit(received[who])  # what a worker does: checkpoint, then commit what it has

    def hooks(who):
        return RebalanceHooks(
            on_assign=lambda tps: events.append((who, "assign", len(tps))),
            on_revoke=lambda tps: revoke(who, tps),
        )

    producer = MetricProducer(kafka_bootstrap, topic, _registry_with(30))
    producer.send(_random_batch(np.random.default_rng(3), 30, 300))
    producer.flush()
    producer.close()
    stop = threading.Event()

    def run(who):  # each member polls on its own thread, as replicas would
        while not stop.is_set():
            received[who] += members[who].poll(0.2)

    def wait_until(condition, timeout_s=20.0):
        deadline = time.monotonic() + timeout_s
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.1)

    a = members["a"] = _consumer(kafka_bootstrap, topic, dead, group, hooks=hooks("a"))
    threads = [threading.Thread(target=run, args=("a",), daemon=True)]
    threads[0].start()
    wait_until(lambda: sum(len(r.batch) for r in received["a"]) == 300)
    b = members["b"] = _consumer(kafka_bootstrap, topic, dead, group, hooks=hooks("b"))  # the group rebalances
    threads.append(threading.Thread(target=run, args=("b",), daemon=True))
    threads[1].start()
    try:
        wait_until(
            lambda: a.assignment() and b.assignment() and len(a.assignment()) + len(b.assignment()) == 3,
            timeout_s=25,
        )
    finally:
        stop.set()
        for t in threads:
            t.join(5)
    try:
        assert a.assignment() and b.assignment()
        assert a.assignment() | b.assignment() == {TopicPartition(topic, p) for p in range(3)}
        assert not a.assignment() & b.assignment()
        assert events[0] == ("a", "assign", 3) and ("a", "revoke", 3) in events  # eager: revoke all, reassign
        assert ("a", "assign", len(a.assignment())) in events and ("b", "assign", len(b.assignment())) in events
        assert received["b"] == []  # a committed all it had read when its partitions were revoked
    finally:
        a.close()
        b.close()


@pytest.mark.kafka
def test_pause_stops_fetching_until_resume(kafka_bootstrap, names):
    topic, dead, group = names
    consumer = _consumer(kafka_bootstrap, topic, dead, group)
    try:
        _settle(consumer)
        consumer.pause()
        assert consumer.paused() == consumer.assignment() and len(consumer.paused()) == 3
        producer = MetricProducer(kafka_bootstrap, topic, _registry_with(10))
        producer.send(_random_batch(np.random.default_rng(2), 10, 100))
        producer.flush()
        producer.close()
        assert consumer.poll(1.0) == []
        consumer.resume()
        assert not consumer.paused()
        assert sum(len(r.batch) for r in _drain(consumer, 100)) == 100
    finally:
        consumer.close()


def test_producer_to_a_missing_broker_fails_with_our_error():
    with pytest.raises(KafkaBusError):
        MetricProducer("127.0.0.1:1", "nowhere", SeriesRegistry(), max_block_ms=500, bootstrap_timeout_ms=500)


def test_consumer_of_a_missing_broker_fails_with_our_error():
    with pytest.raises(KafkaBusError):
        MetricConsumer(
            "127.0.0.1:1", ["nowhere"], "g", SeriesRegistry(), dead_letter_topic="dead", bootstrap_timeout_ms=500
        )
