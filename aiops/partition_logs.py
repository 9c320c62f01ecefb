"""Log mining follows Kafka partitions: one `LogAnomalies` (miner, counts, examples) per owned logs partition.

Log records are keyed by source (ingest.kafka_logs), so a source always lands on one partition of
`kafka.topics.logs`, and the miner of that partition is the only one that ever sees it: its template
ids stay stable whoever owns the partition, as long as the state moves with it. A partition's state —
template table, known templates, records seen (warm-up), the counts of intervals still open, the
watermark and a few masked examples per template — is checkpointed as JSON in the store's
`checkpoints` table as `logs:<group>:<topic>:<partition>` with the offset it has seen, beside the
detector checkpoints of the metrics partitions (aiops.partition_state), and loaded on assignment.

Context for anomalies on log series (`enrich`): the count points go through the metrics topic, keyed by
series, so the worker that detects a burst of `log_template_count{template_id=7, service=a}` is
usually not the one mining service a's logs. It finds the source's logs partition (murmur2 of the
source key, as the producer's partitioner does): if it owns it, the live miner answers; else the
partition's last checkpoint in the store does (cached for `reread_s`). So a template younger than the
owner's last checkpoint (`kafka.checkpoint_every_s`) is shown without text or examples, and the
error lines of `log_error_count` anomalies are only known to the owner (they are not checkpointed).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import msgspec
from kafka import TopicPartition
from sqlalchemy import Connection

from aiops.alerts import AnomalyRecord
from aiops.loganomalies import LOG_SERIES, LogAnomalies
from aiops.settings import LogSettings
from aiops.store import StoreEngine, repository
from detectors.types import MetricBatch
from ingest.kafka_codec import partition_hash
from ingest.kafka_logs import source_key
from ingest.points import PointDecoder
from ingest.registry import SeriesRegistry

__all__ = ["PartitionLogs", "logs_state_name"]

log = logging.getLogger(__name__)

_VERSION = 1


def logs_state_name(group: str, tp: TopicPartition) -> str:
    return f"logs:{group}:{tp.topic}:{tp.partition}"[:128]


class PartitionLogs:
    """The log miners of the logs partitions a worker owns, their checkpoints, and log context for anomalies."""

    def __init__(self, settings: LogSettings, registry: SeriesRegistry, group: str, topic: str, n_partitions: int,
                 store: StoreEngine, *, max_future_skew_s: float = 300.0, reread_s: float = 30.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.registry = registry
        self.group = group
        self.topic = topic
        self.n_partitions = max(1, n_partitions)
        self.store = store
        self.reread_s = reread_s
        self.clock = clock
        self._decoder = PointDecoder(registry, max_future_skew_s=max_future_skew_s)  # the pipeline thread's alone
        self.owned: dict[TopicPartition, LogAnomalies] = {}
        self._remote: dict[int, tuple[float, LogAnomalies | None]] = {}  # partition → (read at, its checkpoint)

    def _new(self) -> LogAnomalies:
        return LogAnomalies(self.settings, self.registry, self._decoder)

    def get(self, tp: TopicPartition) -> LogAnomalies:
        logs = self.owned.get(tp)
        if logs is None:
            logs = self.owned[tp] = self._new()
        return logs

    def batch(self, points: list[dict[str, Any]], now: float) -> MetricBatch:
        """Count points as a batch of this process's series (ingest checks; rejections, e.g. past max_series, dropped)."""
        return self._decoder.decode(msgspec.json.encode(points), now).batch

    # -- checkpoints -----------------------------------------------------------------------------

    def save(self, conn: Connection, offsets: dict[TopicPartition, int], now: float) -> int:
        """Checkpoint each owned logs partition of `offsets` (the next offset its state has not seen)."""
        written = 0
        for tp, offset in offsets.items():
            logs = self.owned.get(tp)
            if logs is None:
                continue
            data = json.dumps({"version": _VERSION, "offset": int(offset),
                               "monitor": logs.monitor.state_dict(open_intervals=True)}).encode()
            repository.save_checkpoint(conn, logs_state_name(self.group, tp), data, now)
            written += len(data)
        return written

    def load(self, conn: Connection, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        """Restore the checkpoints of the logs partitions among `tps`; returns the offset each has seen."""
        offsets = {}
        for tp in tps:
            if tp.topic != self.topic:
                continue
            logs = self.owned[tp] = self._new()
            offset = self._restore(conn, tp.partition, logs)
            if offset is not None:
                offsets[tp] = offset
        return offsets

    def _restore(self, conn: Connection, partition: int, logs: LogAnomalies) -> int | None:
        saved = repository.load_checkpoint(conn, logs_state_name(self.group, TopicPartition(self.topic, partition)))
        if saved is None:
            return None
        try:
            state = json.loads(bytes(saved[0]))
            if state.get("version") != _VERSION:
                raise ValueError(f"version {state.get('version')}")
            logs.load_state_dict(state["monitor"])
            return int(state["offset"])
        except (ValueError, KeyError, TypeError) as exc:  # damaged or old: this partition's miner starts cold
            log.warning("log partition state not restored", extra={"partition": partition, "error": str(exc)})
            return None

    def forget(self, tps: list[TopicPartition]) -> None:
        for tp in tps:
            self.owned.pop(tp, None)

    # -- context for anomalies on log series -----------------------------------------------------

    def enrich(self, records: list[AnomalyRecord]) -> list[AnomalyRecord]:
        """Anomalies on log series get the template and examples from the miner of their source's partition."""
        out = []
        for r in records:  # a loop over anomalies, not points
            name, labels = r.key
            logs = self._miner_of(dict(labels)) if name in LOG_SERIES and "log" not in r.explanation else None
            out.append(logs.enrich([r])[0] if logs is not None else r)
        return out

    def _miner_of(self, labels: dict[str, str]) -> LogAnomalies | None:
        partition = partition_hash(source_key(labels)) % self.n_partitions
        owned = self.owned.get(TopicPartition(self.topic, partition))
        if owned is not None:
            return owned
        now = self.clock()
        cached = self._remote.get(partition)
        if cached is not None and now - cached[0] < self.reread_s:
            return cached[1]
        logs: LogAnomalies | None = self._new()
        with self.store.begin() as conn:
            if self._restore(conn, partition, logs) is None:
                logs = None
        self._remote[partition] = (now, logs)
        return logs
