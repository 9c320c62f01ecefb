"""`aiops worker`: a consumer-group member that runs detection and alerting for the partitions it owns.

    poll thread:     MetricConsumer.poll → queue of records ──► pause partitions when it is full
    pipeline thread: records (coalesced) → Pipeline.process (detect, store effects) → done
                     log records → the partition's miner (aiops.partition_logs) → count points produced
                     to the metrics topic (flushed), new templates stored as anomalies → done
    poll thread:     commit done records (contiguous per partition) ◄── at-least-once

Delivery: an offset is committed only after its record's effects are stored. Replays (a crash, a
rebalance) are made harmless by two offsets per partition kept in the store (aiops.partition_state):
- `applied`: written in the same transaction as a batch's anomalies and alerts; a replayed record
  below it updates the detectors but stores nothing again, so no anomaly or alert is counted twice;
- the state checkpoint's offset: records below it are already in the loaded detector state and are
  skipped altogether.
Fencing (aiops.fencing): on assignment the worker claims each partition's ownership epoch in the store;
the transactions that store a partition's effects or checkpoints first check it still holds it. A
zombie (its session expired, a successor claimed the partition) gets PartitionFenced: nothing of its
batch is stored or published, and the worker stops with WorkerError.
Alerts are deduplicated by fingerprint in the store as well: a worker asks the store about a
fingerprint it does not know before opening an alert (the previous owner may have opened it).

Log records (`kafka.topics.logs`, keyed by source) are mined by one miner per owned logs partition,
checkpointed with the partition's offset like detector state. Closed intervals' counts go back to the
metrics topic keyed by series, so their detector state follows the metrics partitions; a replay may
produce again the counts of intervals closed after the last checkpoint (duplicate points).

Spans come twice (aiops.partition_traces): records of `kafka.topics.spans` (by trace) get their callers
resolved and go on to `kafka.topics.spans_by_service` (flushed before they are done); records of that
topic (by service) are aggregated, and each is done only once every interval it added to has been
emitted to the metrics topic (flushed): until then it is held, uncommitted, so the next owner of the
partition rebuilds the open intervals by replaying it.

Rebalances run `on_revoke` (wait for the queue to drain, commit, checkpoint the revoked partitions'
state) and `on_assign` (load their state and applied offsets, reload the owned firing alerts) on
kafka-python's IO thread while the poll thread waits. SIGTERM stops polling, drains, commits and
checkpoints, then leaves the group.

Exceptions:

    WorkerError                   a batch could not be scored or stored: the worker stopped, uncommitted
                                  (caused by aiops.fencing.PartitionFenced: a newer owner took a partition)
    ingest.kafka_bus.KafkaBusError  the broker could not be reached, or anomalies not published
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import msgspec
import numpy as np
from kafka import KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from aiops.alerts import AlertEvent, AnomalyRecord
from aiops.fencing import PartitionEpochs, PartitionFenced
from aiops.partition_logs import PartitionLogs
from aiops.partition_state import PartitionState, load_applied, save_applied
from aiops.partition_traces import PartitionTraces
from aiops.pipeline import IngestItem
from aiops.service import Service, topic_partitions
from aiops.settings import Settings
from detectors import MetricBatch
from ingest.kafka_bus import KafkaBusError, MetricConsumer, MetricProducer, RebalanceHooks, Received, create_topics
from ingest.kafka_spans import SpanProducer, decode_spans
from ingest.registry import series_key

__all__ = ["Worker", "WorkerError"]

log = logging.getLogger(__name__)

SERVICE_MAP_REFRESH_S = 30.0  # how often a worker re-reads the traced service map (the parts all processes save)

_encode = msgspec.json.Encoder().encode


class WorkerError(Exception):
    """The worker stopped because a batch could not be processed or stored (it is not committed)."""


class Worker:
    """One member of `kafka.group`; `run(stop)` until `stop` is set, then shuts down gracefully."""

    def __init__(
        self,
        settings: Settings,
        *,
        service: Service | None = None,
        client_id: str = "aiops-worker",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.kafka = settings.kafka
        self.client_id = client_id
        self.clock = clock
        self.service = service or Service(settings, clock=clock, role="worker")
        self.pipeline = self.service.pipeline
        self.state = PartitionState(self.service.detection, self.service.registry, self.kafka.group,
                                    forecasts=self.service.forecasts, entities=self.pipeline.entities)
        self.epochs = PartitionEpochs(self.kafka.group)  # the ownership epochs claimed at assignment
        # predictive alerts and resolutions found on the tick: their events go to the alerts topic too
        self.pipeline.on_housekeeping = lambda conn, records, alert_ids, events: self._publish([], [], events)
        self.consumer: MetricConsumer | None = None
        self.publisher: KafkaProducer | None = None
        self.counts: MetricProducer | None = None  # log counts and RED points to the metrics topic
        self.logs: PartitionLogs | None = None  # the miners of the owned logs partitions (logs enabled)
        self.traces: PartitionTraces | None = None  # the span stages of the owned spans partitions (traces enabled)
        self.resolved: SpanProducer | None = None  # stage 1's spans, with callers, to kafka.topics.spans_by_service
        self.points = 0  # points scored since start
        self.log_records = 0  # log lines mined since start
        self.spans = 0  # spans resolved (stage 1) since start
        self._queue: queue.Queue[Received] = queue.Queue()
        self._busy = threading.Lock()  # held while the pipeline thread works, and in rebalance hooks
        self._done: list[Received] = []
        self._done_lock = threading.Lock()
        self._next: dict[TopicPartition, int] = {}  # next offset not yet processed, per owned partition
        self._skip_below: dict[TopicPartition, int] = {}  # records below are in the loaded state
        self._applied: dict[TopicPartition, int] = {}  # records below have their effects stored
        self._halt = threading.Event()
        self._error: BaseException | None = None
        self._paused = False
        self._last_checkpoint = clock()
        self._n_partitions = 1
        self._thread: threading.Thread | None = None

    # -- life cycle ------------------------------------------------------------------------------

    def start(self) -> None:
        k = self.kafka
        if k.create_topics:
            create_topics(k.bootstrap, {**topic_partitions(k), **{m.topic: k.partitions for m in k.mappings}})
        self.service.start_worker()
        try:
            self.publisher = KafkaProducer(
                bootstrap_servers=k.bootstrap, acks="all", retries=5, linger_ms=5,
                compression_type=k.compression_type,
            )
            self._n_partitions = len(self.publisher.partitions_for(k.topics.metrics) or ()) or 1
            n_logs = len(self.publisher.partitions_for(k.topics.logs) or ()) if self.settings.logs.enabled else 0
            n_spans = len(self.publisher.partitions_for(k.topics.spans) or ()) if self.settings.traces.enabled else 0
            traced = bool(n_spans and self.publisher.partitions_for(k.topics.spans_by_service))
        except KafkaError as exc:
            raise KafkaBusError(f"cannot reach Kafka at {k.bootstrap}: {exc}") from exc
        topics = [k.topics.metrics, *(m.topic for m in k.mappings)]
        decoders = _mapping_decoders(k.mappings, self.service.registry, self.clock)
        if self.settings.logs.enabled and not n_logs:
            log.warning("logs topic missing: no log records are mined here", extra={"topic": k.topics.logs})
        if n_logs or traced:
            self.counts = MetricProducer(k.bootstrap, k.topics.metrics, self.service.registry,
                                         compression=k.compression_type, partition_key=self.service.partitioner)
        if self.settings.traces.enabled and not traced:
            log.warning("span topics missing: no spans are aggregated here", extra={"topic": k.topics.spans})
        if traced:
            self.traces = PartitionTraces(self.settings.traces, self.service.registry, k.group, k.topics.spans,
                                          k.topics.spans_by_service, n_spans, clock=self.clock)
            self.resolved = SpanProducer(k.bootstrap, k.topics.spans_by_service, by="service",
                                         compression=k.compression_type)
            topics += [k.topics.spans, k.topics.spans_by_service]
            decoders[k.topics.spans] = decoders[k.topics.spans_by_service] = decode_spans
        if n_logs:
            from ingest.kafka_logs import decode_logs

            self.logs = PartitionLogs(self.settings.logs, self.service.registry, k.group, k.topics.logs, n_logs,
                                      self.service.store, max_future_skew_s=self.settings.ingest.max_future_skew_s,
                                      reread_s=SERVICE_MAP_REFRESH_S, clock=self.clock)
            self.pipeline.log_context = self.logs
            topics.append(k.topics.logs)
            decoders[k.topics.logs] = decode_logs
        self.consumer = MetricConsumer(
            k.bootstrap,
            topics,
            k.group,
            self.service.registry,
            dead_letter_topic=k.topics.dead_letter,
            hooks=RebalanceHooks(self._on_assign, self._on_revoke),
            session_timeout_ms=k.session_timeout_ms,
            max_poll_records=k.max_poll_records,
            fetch_max_wait_ms=100,  # an idle partition's fetch returns within 0.1 s: part of produce → alert latency
            client_id=self.client_id,
            decoders=decoders,
        )
        self._thread = threading.Thread(target=self._pipeline_loop, name="aiops-worker-pipeline", daemon=True)
        self._thread.start()
        log.info("worker started", extra={"group": k.group, "topic": k.topics.metrics})

    def run(self, stop: threading.Event) -> None:
        """Poll until `stop` is set (SIGTERM) or processing fails; then drain, commit, checkpoint, leave."""
        if self.consumer is None:
            self.start()
        try:
            while not stop.is_set() and self._error is None:
                for record in self.consumer.poll(timeout_s=0.2):
                    self._queue.put(record)
                self._commit_done()
                self._backpressure()
        finally:
            self.shutdown()
        if self._error is not None:
            raise WorkerError(f"worker stopped: {self._error}") from self._error

    def shutdown(self) -> None:
        """Finish the records taken, commit them, checkpoint owned partitions, leave the group."""
        if self._error is None:
            self._drain()
        self._halt.set()
        if self._thread is not None:
            self._thread.join(30)
        if self.consumer is not None:
            if self._error is None:
                self._commit_done()
                with self._busy:
                    try:
                        self._checkpoint(list(self._next))
                    except PartitionFenced as exc:  # a zombie: its state is not the partition's any more
                        self._error = exc
            self.consumer.close()  # leaving the group: no revocation callback, state is saved above
            self.consumer = None
        if self.publisher is not None:
            self.publisher.close(timeout=10)
            self.publisher = None
        for producer in (self.counts, self.resolved):
            if producer is not None:
                producer.close()
        self.counts = self.resolved = None
        self.service.stop_worker()
        log.info("worker stopped", extra={"points": self.points})

    # -- the poll thread -------------------------------------------------------------------------

    def _commit_done(self) -> None:
        with self._done_lock:
            done, self._done = self._done, []
        if done:
            self.consumer.commit(done)

    def _backpressure(self) -> None:
        """Pause fetching while the pipeline is behind by `queue_records`; resume at half of it."""
        depth = self._queue.qsize()
        if not self._paused and depth >= self.kafka.queue_records:
            self.consumer.pause()
            self._paused = True
        elif self._paused and depth <= self.kafka.queue_records // 2:
            self.consumer.resume()
            self._paused = False

    def _drain(self, timeout_s: float = 60.0) -> None:
        """Wait until the pipeline thread has processed every queued record."""
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks and self._error is None and time.monotonic() < deadline:
            time.sleep(0.01)

    # -- the pipeline thread ---------------------------------------------------------------------

    def _pipeline_loop(self) -> None:
        while not self._halt.is_set():
            try:
                items = [self._queue.get(timeout=0.2)]
            except queue.Empty:
                items = []
            while items and len(items) < self.kafka.coalesce_records:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                with self._busy:
                    if items and self._error is None:  # after a failure nothing more is processed or committed
                        self._process(items)
                    self._tick()
            except Exception as exc:  # nothing of it is committed: the next owner processes it again
                log.exception("worker batch failed; stopping")
                self._error = exc
                self._halt.set()
            finally:
                for _ in items:
                    self._queue.task_done()

    def _process(self, records: list[Received]) -> None:
        now = self.clock()
        todo, logs, spans, by_service = [], [], [], []
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            if r.offset < self._skip_below.get(tp, 0):
                continue  # already in the state loaded for this partition
            if self.logs is not None and r.topic == self.logs.topic:
                logs.append(r)
            elif self.traces is not None and r.topic == self.traces.spans_topic:
                spans.append(r)
            elif self.traces is not None and r.topic == self.traces.by_service_topic:
                by_service.append(r)
            else:
                todo.append(r)
        if logs:
            self._mine(logs, now)
        if spans:
            self._resolve(spans)
        held = {id(r) for r in by_service}
        if by_service:
            self._aggregate(by_service, now)
        if todo:
            stored = [r.offset < self._applied.get(TopicPartition(r.topic, r.partition), 0) for r in todo]
            mask = np.repeat(np.array(stored), [len(r.batch) for r in todo]) if any(stored) else None
            applied: dict[TopicPartition, int] = {}
            for r in todo:
                tp = TopicPartition(r.topic, r.partition)
                self.state.observe(tp, r.batch.series_id)
                applied[tp] = max(applied.get(tp, 0), r.offset + 1)
            items = [IngestItem(r.batch, r.timestamp_ms / 1000 if r.timestamp_ms and r.timestamp_ms > 0 else now)
                     for r in todo]

            def on_persist(conn, anomalies: list[AnomalyRecord], alert_ids: list[int], events: list[AlertEvent]) -> None:
                save_applied(conn, self.epochs, applied, now)
                self._publish(anomalies, alert_ids, events)  # before the commit: at-least-once downstream too

            self.pipeline.process(items, now, stored=mask, on_persist=on_persist)
            self.points += sum(len(r.batch) for r in todo)
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            self._next[tp] = max(self._next.get(tp, 0), r.offset + 1)
        with self._done_lock:
            self._done.extend(r for r in records if id(r) not in held)  # held: done when their intervals close

    def _mine(self, records: list[Received], now: float) -> None:
        """Log records: mined by their partition's miner; closed intervals' counts produced to the metrics
        topic (and flushed: before the records are committed); new templates stored and published as
        anomalies, unless `applied` says a previous owner stored them already."""
        produced = 0
        for r in records:  # a loop over Kafka records (each many lines)
            tp = TopicPartition(r.topic, r.partition)
            logs = self.logs.get(tp)
            produced += self._produce_counts(logs.observe(r.batch, now), now)
            new = logs.take()
            self.log_records += len(r.batch)
            if not new or r.offset < self._applied.get(tp, 0):
                continue
            applied = {tp: r.offset + 1}

            def on_persist(conn, anomalies, alert_ids, events, applied=applied) -> None:
                save_applied(conn, self.epochs, applied, now)
                self._publish(anomalies, alert_ids, events)

            self.pipeline.persist(new, now, on_persist)
            self._applied[tp] = r.offset + 1
        if produced:
            self.counts.flush()

    def _resolve(self, records: list[Received]) -> None:
        """Stage 1 of spans: name each span's caller (its trace is on this partition), send on by service.
        Flushed before the records are reported done."""
        sent = 0
        for r in records:  # a loop over Kafka records (each many spans)
            resolved, watermark = self.traces.resolve(TopicPartition(r.topic, r.partition), r.batch.spans)
            sent += self.resolved.send(resolved, r.partition, watermark) if len(resolved) else 0
            self.spans += len(r.batch.spans)
        if sent:
            self.resolved.flush()

    def _aggregate(self, records: list[Received], now: float) -> None:
        """Stage 2 of spans: RED and edge figures of closed intervals to the metrics topic (flushed), new
        edges recorded; records are reported done once their intervals are emitted."""
        points, edges = [], []
        for r in records:
            batch, new = self.traces.aggregate(TopicPartition(r.topic, r.partition), r, *r.batch)
            points.append(batch)
            edges += new
        self._emit_red(points, edges, now)

    def _emit_red(self, points: list, edges: list, now: float) -> None:
        batch = MetricBatch.concat(points) if points else MetricBatch.empty()
        if len(batch):
            self.counts.send(batch)
            self.counts.flush()
        if edges:
            self._record_edges(edges, now)
        released = self.traces.release()
        if released:
            with self._done_lock:
                self._done.extend(released)

    def _record_edges(self, edges: list, now: float) -> None:
        """Edges new to the map as change events (once: the merged map in the store knows older ones), the
        partitions' map parts saved, and the merged map re-read (incident grouping sees them at once)."""
        fresh = [e for e in edges if not self.service.service_map.known(e.caller, e.callee)]
        with self.service.store.begin() as conn:
            self.epochs.check(conn, list(self.traces.monitors))
            if fresh:
                self.service.traces.record_new_edges(conn, fresh, now)
            self.traces.save(conn, list(self.traces.monitors), now)
        self.service.refresh_service_map()

    def _produce_counts(self, points: list[dict], now: float) -> int:
        if not points:
            return 0
        batch = self.logs.batch(points, now)
        return self.counts.send(batch) if len(batch) else 0

    def _tick(self) -> None:
        """Housekeeping (quiet alerts resolve, notifications) and the periodic partition checkpoint."""
        now = self.clock()
        self.pipeline.tick(now)
        if self.logs is not None:  # intervals left open by sources that all fell silent
            produced = sum(self._produce_counts(logs.tick(now), now) for logs in self.logs.owned.values())
            if produced:
                self.counts.flush()
        if self.traces is not None:  # spans left waiting, intervals left open, by partitions gone quiet
            sent = sum(self.resolved.send(spans, tp.partition, watermark)
                       for tp, spans, watermark in self.traces.release_waiting(now) if len(spans))
            if sent:
                self.resolved.flush()
            batch, edges = self.traces.close_idle(now)
            self._emit_red([batch], edges, now)
        every = self.kafka.checkpoint_every_s
        if every and now - self._last_checkpoint >= every:
            self._checkpoint(list(self._next))
        self.service.refresh_service_map(max_age_s=SERVICE_MAP_REFRESH_S)

    def _checkpoint(self, tps: list[TopicPartition]) -> None:
        offsets = {tp: self._next[tp] for tp in tps if tp in self._next}
        now = self.clock()
        self._last_checkpoint = now
        if not offsets:
            return
        with self.service.store.begin() as conn:
            self.epochs.check(conn, offsets)
            written = self.state.save(conn, offsets, now)
            if self.logs is not None:
                written += self.logs.save(conn, offsets, now)
            if self.traces is not None:
                self.traces.save(conn, list(offsets), now)
        log.info("partition state saved", extra={"partitions": len(offsets), "bytes": written})

    def _publish(self, anomalies: list[AnomalyRecord], alert_ids: list[int], events: list[AlertEvent]) -> None:
        topics = self.kafka.topics
        if self.publisher is None or not (topics.anomalies or topics.alerts):
            return
        try:
            if topics.anomalies:
                for r, alert_id in zip(anomalies, alert_ids):
                    self.publisher.send(topics.anomalies, key=_series_entry(r.key), value=_encode(_anomaly_json(r, alert_id)))
            if topics.alerts:
                for e in events:
                    self.publisher.send(topics.alerts, key=e.fingerprint.encode(), value=_encode(_event_json(e)))
            if anomalies or events:
                self.publisher.flush(timeout=30)
        except KafkaError as exc:
            raise KafkaBusError(f"cannot publish anomalies and alerts: {exc}") from exc

    # -- rebalance hooks (kafka-python's IO thread; the poll thread waits) -----------------------

    def _on_revoke(self, partitions: list[TopicPartition]) -> None:
        self._drain()
        with self._busy:
            self._commit_done()  # collected by the consumer and committed before the partitions move
            if self._error is None:
                try:
                    self._checkpoint(partitions)
                except Exception:  # the next owner starts from the previous checkpoint: warm, a little behind
                    log.exception("partition state not saved on revocation")
            self.state.forget(partitions)
            self.epochs.forget(partitions)
            if self.logs is not None:
                self.logs.forget(partitions)
            if self.traces is not None:
                self.traces.forget(partitions)
            for tp in partitions:
                for table in (self._next, self._skip_below, self._applied):
                    table.pop(tp, None)
        self._paused = False
        log.info("partitions revoked", extra={"partitions": [str(tp) for tp in partitions]})

    def _on_assign(self, partitions: list[TopicPartition]) -> None:
        try:
            self._assign(partitions)
        except Exception as exc:  # without its applied offsets a replay could store twice: stop instead
            log.exception("partitions could not be taken over; stopping")
            self._error = exc

    def _assign(self, partitions: list[TopicPartition]) -> None:
        owned = {tp.partition for tp in partitions if tp.topic == self.kafka.topics.metrics}  # eager: all it owns
        with self._busy, self.service.store.begin() as conn:
            self.epochs.claim(conn, partitions, self.clock())  # first: a zombie's write now waits or is fenced
            loaded = self.state.load(conn, partitions)
            if self.logs is not None:
                loaded.update(self.logs.load(conn, partitions))
            if self.traces is not None:
                self.traces.load(conn, partitions, self.clock())
            self._skip_below.update(loaded)
            self._applied.update(load_applied(conn, self.kafka.group, partitions))
            members = {self.service.registry.key(int(sid)) for tp in partitions for sid in self.state.series_of(tp)}
            self.pipeline.alerts.load(conn, keep=lambda row: self._owns(row, owned, members))
            if self.pipeline.incidents is not None:
                self.pipeline.incidents.load(conn)
        self._paused = False
        log.info("partitions assigned", extra={"partitions": [str(tp) for tp in partitions], "warm": len(loaded)})

    def _owns(self, alert: dict[str, Any], owned: set[int], members: set) -> bool:
        """Whether the alert's series (or entity) is this worker's: it hashes to an owned metrics partition
        (aiops.partitioning), or an owned partition's checkpoint holds it (mapped topics are partitioned
        by their producers)."""
        labels = dict(alert["labels"])
        name = labels.pop("__name__", "")
        if series_key(name, labels) in members:
            return True
        return self.service.partitioner.alert_partition(alert["labels"], self._n_partitions) in owned


def _mapping_decoders(mappings, registry, clock: Callable[[], float]) -> dict[str, Callable[[bytes], Any]]:
    """A decoder per mapped topic (ingest.kafka_mapping); our own topic uses the record codec."""
    if not mappings:
        return {}
    from ingest.kafka_mapping import JsonMapping

    return {
        m.topic: JsonMapping(registry, name=m.name, value=m.value, labels=m.labels, ts=m.ts, points=m.points, clock=clock).decode
        for m in mappings
    }


def _series_entry(key) -> bytes:
    name, labels = key
    return msgspec.json.encode((name, dict(labels)))


def _anomaly_json(r: AnomalyRecord, alert_id: int) -> dict[str, Any]:
    name, labels = r.key
    return {
        "name": name, "labels": dict(labels), "ts": r.ts, "value": r.value, "expected": r.expected,
        "lower": r.lower, "upper": r.upper, "score": r.score, "severity": r.severity, "detector": r.detector,
        "alert_id": alert_id,
    }


def _event_json(e: AlertEvent) -> dict[str, Any]:
    return {
        "event": e.event, "alert_id": e.alert_id, "fingerprint": e.fingerprint, "severity": e.severity,
        "summary": e.summary, "labels": e.labels, "first_seen": e.first_seen, "silenced_by": e.silenced_by,
        "flapping": e.flapping,
    }
