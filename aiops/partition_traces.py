"""Spans follow Kafka partitions in two stages, so RED figures stay exact across workers.

    kafka.topics.spans (by trace id)  ──► resolve: each span's caller service, from the parent ids of
                                          the partition's recent spans (a trace is on one partition)
    kafka.topics.spans_by_service     ──► aggregate: RED per (service, operation) and per caller → callee
      (spans that count, by service)      edge, from every span of that service (one owner per service)
                                          → points to the metrics topic; new edges → change events

Stage 1 (`resolve`) keeps one `ParentIndex` per owned spans partition, in memory only: after a
rebalance the new owner starts with an empty index, so a child whose parent came before the move is
counted in its service but not on an edge (for at most one trace's lifetime).

Stage 2 keeps one `TraceMonitor` per owned spans-by-service partition: its aggregator's open intervals
and its part of the service map. Open intervals are not checkpointed (that would be every span of the
last minute); instead a record is *held* — not reported done, so its offset is not committed — until
every interval it contributed to has closed and its points are produced. The next owner replays the
held records to rebuild the open intervals. Its checkpoint (`service-map:<group>:<topic>:<partition>`,
saved with the detector checkpoints and on revocation) holds the partition's edges and `closed_before`,
so replayed spans of intervals already emitted are dropped as late instead of emitted twice. After a
crash, intervals closed since the last checkpoint are emitted again (duplicate points), and replayed
spans count twice in an edge's running totals.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from kafka import TopicPartition
from sqlalchemy import Connection

from aiops.settings import TracesSettings
from aiops.topology import ServiceMap
from aiops.traces import CHECKPOINT_NAME, NewEdge, TraceMonitor
from detectors import MetricBatch
from detectors.red import ParentIndex, SpanBatch
from ingest.registry import SeriesRegistry

__all__ = ["PartitionTraces", "part_name"]


def part_name(group: str, tp: TopicPartition) -> str:
    return f"{CHECKPOINT_NAME}:{group}:{tp.topic}:{tp.partition}"[:128]


def resolve(index: ParentIndex, spans: SpanBatch) -> SpanBatch:
    """The spans stage 2 needs — requests served, calls across services — each with its caller service."""
    callers = index.callers(spans)
    cross = (callers != "") & (callers != spans.service)
    counted = np.ones(len(spans), dtype=bool) if spans.counted is None else np.asarray(spans.counted, dtype=bool)
    keep = np.flatnonzero(counted | cross)
    kept = spans.take(keep)
    return SpanBatch(kept.span_id, kept.parent_id, kept.service, kept.operation, kept.end_s, kept.duration_ms,
                     kept.error, counted[keep], caller=np.where(cross[keep], callers[keep], "").astype(object))


@dataclass
class _Held:
    record: object  # ingest.kafka_bus.Received
    until: float  # the end of the latest interval the record's spans fell in


class PartitionTraces:
    """The resolvers and aggregators of the spans partitions a worker owns, and their checkpoints."""

    def __init__(self, settings: TracesSettings, registry: SeriesRegistry, group: str, spans_topic: str,
                 by_service_topic: str, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.registry = registry
        self.group = group
        self.spans_topic = spans_topic
        self.by_service_topic = by_service_topic
        self.clock = clock
        self.resolvers: dict[TopicPartition, ParentIndex] = {}
        self.monitors: dict[TopicPartition, TraceMonitor] = {}
        self._held: dict[TopicPartition, deque[_Held]] = {}
        self._last_span: dict[TopicPartition, float] = {}  # when a partition's last spans came (clock)

    # -- stage 1 ---------------------------------------------------------------------------------

    def resolve(self, tp: TopicPartition, spans: SpanBatch) -> SpanBatch:
        index = self.resolvers.get(tp)
        if index is None:
            index = self.resolvers[tp] = ParentIndex(self.settings.max_span_ids)
        return resolve(index, spans)

    # -- stage 2 ---------------------------------------------------------------------------------

    def _monitor(self, tp: TopicPartition) -> TraceMonitor:
        monitor = self.monitors.get(tp)
        if monitor is None:
            monitor = self.monitors[tp] = TraceMonitor(self.settings, self.registry, ServiceMap(), save_every_s=0,
                                                       checkpoint=part_name(self.group, tp))
        return monitor

    def aggregate(self, tp: TopicPartition, record, spans: SpanBatch) -> tuple[MetricBatch, list[NewEdge]]:
        """Fold a record's spans into its partition's intervals: the closed intervals' points, new edges.

        The record is held until those intervals close (`release`)."""
        monitor = self._monitor(tp)
        interval = monitor.aggregator.interval_s
        until = math.floor(float(spans.end_s.max()) / interval) * interval + interval if len(spans) else -math.inf
        self._held.setdefault(tp, deque()).append(_Held(record, until))
        self._last_span[tp] = self.clock()
        return monitor.observe(spans)

    def release(self) -> list:
        """Records whose intervals have all closed (and been emitted): safe to commit, in order per partition."""
        out = []
        for tp, held in self._held.items():
            closed = self.monitors[tp].aggregator.closed_before
            while held and held[0].until <= closed:
                out.append(held.popleft().record)
        return out

    def close_idle(self, now: float) -> tuple[MetricBatch, list[NewEdge]]:
        """Close the intervals of partitions whose spans stopped coming (no span for an interval plus grace)."""
        quiet = self.settings.interval_s + self.settings.grace_s
        batches, edges = [], []
        for tp, monitor in self.monitors.items():
            if monitor.aggregator.has_open() and now - self._last_span.get(tp, now) >= quiet:
                batch, new = monitor.flush()
                batches.append(batch)
                edges += new
        return MetricBatch.concat(batches) if batches else MetricBatch.empty(), edges

    def has_held(self) -> bool:
        return any(self._held.values())

    # -- checkpoints -----------------------------------------------------------------------------

    def save(self, conn: Connection, tps: list[TopicPartition], now: float) -> int:
        """Save the map part and closed intervals of each owned spans-by-service partition among `tps`."""
        saved = 0
        for tp in tps:
            monitor = self.monitors.get(tp)
            if monitor is not None:
                monitor.save(conn, now)
                saved += 1
        return saved

    def load(self, conn: Connection, tps: list[TopicPartition], now: float) -> None:
        """Restore the map parts and closed intervals of the spans-by-service partitions among `tps`."""
        for tp in tps:
            if tp.topic == self.by_service_topic:
                self._monitor(tp).load(conn, now)

    def forget(self, tps: list[TopicPartition]) -> None:
        for tp in tps:
            for table in (self.resolvers, self.monitors, self._held, self._last_span):
                table.pop(tp, None)
