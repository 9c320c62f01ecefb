"""Spans follow Kafka partitions in two stages, so RED figures stay exact across workers.

    kafka.topics.spans (by trace id)  ──► resolve: each span's caller service, from the parent ids of
                                          the partition's recent spans (a trace is on one partition)
    kafka.topics.spans_by_service     ──► aggregate: RED per (service, operation) and per caller → callee
      (spans that count, by service)      edge, from every span of that service (one owner per service)
                                          → points to the metrics topic; new edges → change events

Stage 1 (`resolve`) keeps one `ParentIndex` per owned spans partition, in memory only: after a
rebalance the new owner starts with an empty index, so a child whose parent came before the move is
counted in its service but not on an edge (for at most one trace's lifetime). A span whose parent has
not come yet waits for it (`traces.parent_wait_s`, in memory: a crash loses those waiting). Each
resolved record carries its spans partition and that partition's watermark (the latest span end it
has seen).

Stage 2 merges several streams (one per spans partition), which run ahead of each other — a worker
behind on its partitions sends older spans. So an interval closes by event-time watermark, as stream
processors do: once *every* source partition is `grace_s` past its end — the minimum of the sources'
watermarks over every partition of the spans topic, leaving out a source silent for `interval_s +
grace_s` of wall time (it has nothing to add, and must not hold the others back). A partition whose sources all fall silent closes its open
intervals after that long too (`close_idle`).

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
    """The spans stage 2 needs — requests served, calls across services — each with its caller service
    (spans whose parent has not come yet wait in `index`; earlier ones whose wait is over come out)."""
    return needed(index.resolve(spans))


def needed(spans: SpanBatch) -> SpanBatch:
    """Of spans with callers: those stage 2 needs, the caller kept only on calls across services."""
    callers = np.asarray(spans.caller, dtype=object)
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
                 by_service_topic: str, n_sources: int, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.registry = registry
        self.group = group
        self.spans_topic = spans_topic
        self.by_service_topic = by_service_topic
        self.clock = clock
        self.n_sources = n_sources  # partitions of the spans topic: the streams stage 2 merges
        self.resolvers: dict[TopicPartition, ParentIndex] = {}
        self.monitors: dict[TopicPartition, TraceMonitor] = {}
        self._held: dict[TopicPartition, deque[_Held]] = {}
        self._last_span: dict[TopicPartition, float] = {}  # when a partition's last spans came (clock), either stage
        self._watermarks: dict[TopicPartition, float] = {}  # stage 1: latest span end per spans partition
        self._sources: dict[TopicPartition, dict[int, tuple[float, float]]] = {}  # stage 2: source → (watermark, clock)

    # -- stage 1 ---------------------------------------------------------------------------------

    def resolve(self, tp: TopicPartition, spans: SpanBatch) -> tuple[SpanBatch, float]:
        """The spans stage 2 needs, with callers, and the partition's watermark."""
        index = self.resolvers.get(tp)
        if index is None:
            # a trace lands on one partition: each sees 1/n of the spans, so 1/n of the ids covers the same time
            index = self.resolvers[tp] = ParentIndex(max(1000, self.settings.max_span_ids // max(1, self.n_sources)),
                                                     min(self.settings.parent_wait_s, self.settings.grace_s))
        if len(spans):
            self._watermarks[tp] = max(self._watermarks.get(tp, 0.0), float(spans.end_s.max()))
            self._last_span[tp] = self.clock()
        return resolve(index, spans), self._watermarks.get(tp, 0.0)

    def release_waiting(self, now: float) -> list[tuple[TopicPartition, SpanBatch, float]]:
        """Spans still waiting for their parent on spans partitions quiet for `parent_wait_s`: they go on
        without a caller (with the partition and its watermark, to be sent to stage 2)."""
        out = []
        for tp, index in self.resolvers.items():
            if index.waiting and now - self._last_span.get(tp, now) >= self.settings.parent_wait_s:
                spans = index.release()
                out.append((tp, needed(spans), self._watermarks.get(tp, 0.0)))
        return out

    # -- stage 2 ---------------------------------------------------------------------------------

    def _monitor(self, tp: TopicPartition) -> TraceMonitor:
        monitor = self.monitors.get(tp)
        if monitor is None:
            monitor = self.monitors[tp] = TraceMonitor(self.settings, self.registry, ServiceMap(), save_every_s=0,
                                                       checkpoint=part_name(self.group, tp))
        return monitor

    def aggregate(self, tp: TopicPartition, record, spans: SpanBatch, source: int | None = None,
                  watermark: float | None = None) -> tuple[MetricBatch, list[NewEdge]]:
        """Fold a record's spans into its partition's intervals: the closed intervals' points, new edges.

        The record is held until those intervals close (`release`)."""
        monitor = self._monitor(tp)
        now = self.clock()
        interval = monitor.aggregator.interval_s
        until = math.floor(float(spans.end_s.max()) / interval) * interval + interval if len(spans) else -math.inf
        self._held.setdefault(tp, deque()).append(_Held(record, until))
        self._last_span[tp] = now
        return monitor.observe(spans, self._merged_watermark(tp, source, watermark, now))

    def _merged_watermark(self, tp: TopicPartition, source: int | None, watermark: float | None,
                          now: float) -> float | None:
        """The least watermark of the sources heard from lately (None: no sources known, close by span ends)."""
        sources = self._sources.get(tp)
        if sources is None:  # every source counts from the start: one not heard from yet may be behind
            sources = self._sources[tp] = {p: (float("-inf"), now) for p in range(self.n_sources)}
        if source is not None and watermark is not None:
            seen = sources.get(source, (watermark, now))[0]
            sources[source] = (max(seen, watermark), now)
        quiet = self.settings.interval_s + self.settings.grace_s
        live = [mark for mark, heard in sources.values() if now - heard < quiet]
        return min(live) if live else None

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

    # -- checkpoints -----------------------------------------------------------------------------

    def save(self, conn: Connection, tps: list[TopicPartition], now: float) -> None:
        """Save the map part and closed intervals of each owned spans-by-service partition among `tps`."""
        for tp in tps:
            monitor = self.monitors.get(tp)
            if monitor is not None:
                monitor.save(conn, now)

    def load(self, conn: Connection, tps: list[TopicPartition], now: float) -> None:
        """Restore the map parts and closed intervals of the spans-by-service partitions among `tps`."""
        for tp in tps:
            if tp.topic == self.by_service_topic:
                self._monitor(tp).load(conn, now)

    def forget(self, tps: list[TopicPartition]) -> None:
        for tp in tps:
            for table in (self.resolvers, self.monitors, self._held, self._last_span, self._watermarks, self._sources):
                table.pop(tp, None)
