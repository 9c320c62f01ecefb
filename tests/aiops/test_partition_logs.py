"""Log miners per Kafka logs partition (aiops.partition_logs): checkpoints and log context, no broker here.

tests/aiops/test_worker_kafka_logs.py drives the same over Tansu.
"""

from __future__ import annotations

from kafka import TopicPartition
from kafka.partitioner.default import murmur2

from aiops.alerts import AnomalyRecord
from aiops.partition_logs import PartitionLogs, logs_state_name
from aiops.settings import LogSettings
from aiops.store import StoreEngine, repository
from detectors.types import LogRecord
from ingest.kafka_logs import source_key
from ingest.registry import SeriesRegistry, series_key

T0 = 1.7e9
SOURCE = {"service": "checkout", "host": "c-1"}
N = 4
PARTITION = (murmur2(source_key(SOURCE)) & 0x7FFFFFFF) % N  # where the producer's partitioner puts the source


def _logs(store: StoreEngine, clock=lambda: T0) -> PartitionLogs:
    return PartitionLogs(LogSettings(interval_s=10, grace_s=0, warmup_records=0), SeriesRegistry(), "g", "logs", N,
                         store, clock=clock)


def _lines(start: int, n: int) -> list[LogRecord]:
    return [LogRecord(T0 + start + i, f"payment {i} declined: password=s3cret{i}", SOURCE, 9) for i in range(n)]


def _anomaly(registry: SeriesRegistry, template_id: int) -> AnomalyRecord:
    key = series_key("log_template_count", {"template_id": str(template_id), **SOURCE})
    return AnomalyRecord(series_id=registry.intern(key), key=key, ts=T0 + 30, value=40.0, expected=5.0, lower=0.0,
                         upper=9.0, score=9.0, severity="critical", detector="ewma_zscore", explanation={})


def test_a_partitions_miner_is_checkpointed_and_restored_with_its_offset(tmp_path):
    store = StoreEngine(f"sqlite:///{tmp_path / 'a.db'}")
    store.migrate()
    tp = TopicPartition("logs", PARTITION)
    owner = _logs(store)
    owner.get(tp).observe(_lines(0, 25), T0 + 100)
    with store.begin() as conn:
        assert owner.save(conn, {tp: 17, TopicPartition("metrics", 0): 3}, T0) > 0  # only logs partitions it owns
        assert repository.load_checkpoint(conn, logs_state_name("g", TopicPartition("metrics", 0))) is None
    successor = _logs(store)
    with store.begin() as conn:
        assert successor.load(conn, [tp, TopicPartition("logs", (PARTITION + 1) % N), TopicPartition("metrics", 0)]) == {tp: 17}
    assert successor.get(tp).monitor.miner.templates() == owner.get(tp).monitor.miner.templates()
    assert set(successor.owned) == {tp, TopicPartition("logs", (PARTITION + 1) % N)}  # the other starts cold
    successor.forget([tp])
    assert tp not in successor.owned


def test_anomalies_on_log_series_get_context_from_the_owner_or_else_from_its_checkpoint(tmp_path):
    store = StoreEngine(f"sqlite:///{tmp_path / 'a.db'}")
    store.migrate()
    tp = TopicPartition("logs", PARTITION)
    owner = _logs(store)
    owner.get(tp).observe(_lines(0, 25), T0 + 100)
    (tid,) = owner.get(tp).monitor.miner.templates()
    local = owner.enrich([_anomaly(owner.registry, tid)])[0].explanation["log"]
    assert local["template"].startswith("payment") and local["examples"][0].endswith("password=***")

    other = _logs(store)  # detects on the metrics partition of the count series, owns no logs partition
    plain = other.enrich([_anomaly(other.registry, tid)])[0]
    assert plain.explanation == {}  # nothing checkpointed yet: no context, nothing invented
    with store.begin() as conn:
        owner.save(conn, {tp: 1}, T0)
    later = _logs(store, clock=lambda: T0 + 60)
    assert later.enrich([_anomaly(later.registry, tid)])[0].explanation["log"] == local
    other.clock = lambda: T0 + 1  # a checkpoint read (or missing) is cached for reread_s
    assert other.enrich([_anomaly(other.registry, tid)])[0].explanation == {}
