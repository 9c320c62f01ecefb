"""The Kafka transport of metric batches: a partitioning producer and an at-least-once consumer.

    MetricProducer.send(batch)  → split by series partition → records (ingest/kafka_codec.py) → Kafka
    MetricConsumer.poll()       → [Received(topic, partition, offset, batch)]   (poison → dead letters)
    MetricConsumer.commit(done) → commits, per partition, the offsets below the first record not done

Delivery is at-least-once: nothing is auto-committed; the caller commits what it has persisted, and a
record that was polled but never committed is delivered again to whichever group member owns its
partition next. Records that cannot be decoded go to a dead-letter topic with the reason and their
origin in headers, and count as done: their offsets are committed with the records around them.
Backpressure: `pause()` / `resume()` of the assigned partitions on the consumer side; on the producer
side `send` waits at most `max_block_ms` for buffer space, then raises `BusFull`.
A `RebalanceHooks` (`on_assign`, `on_revoke`) is called during `poll`, while the caller's thread waits
in it (on kafka-python's IO thread), so a worker can checkpoint state and `commit` in `on_revoke`
before its partitions move; such a commit is sent, and awaited, before the group rebalances.

Exceptions (foreign errors mapped at this boundary):

    KafkaBusError            a broker call failed (connection, timeout, unknown topic, …)
    ingest.bus.BusFull       the producer's buffer stayed full for `max_block_ms`
    kafka_codec.RecordError  (not raised here: such records go to the dead-letter topic)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from kafka import AsyncConsumerRebalanceListener, KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError, KafkaTimeoutError, TopicAlreadyExistsError
from kafka.structs import OffsetAndMetadata

from detectors.types import MetricBatch
from ingest.bus import BusFull
from ingest.kafka_codec import PartitionKey, RecordCodec, RecordError
from ingest.registry import SeriesRegistry

__all__ = [
    "DEAD_LETTER_HEADERS",
    "KafkaBusError",
    "MetricConsumer",
    "MetricProducer",
    "RebalanceHooks",
    "TopicProducer",
    "Received",
    "create_topics",
]

# Headers of a dead letter; its key and value are the original record's, unchanged.
DEAD_LETTER_HEADERS = ("aiops.error", "aiops.topic", "aiops.partition", "aiops.offset", "aiops.timestamp_ms")


class KafkaBusError(Exception):
    """A call to the Kafka broker failed."""


@dataclass(frozen=True, slots=True)
class Received:
    topic: str
    partition: int
    offset: int
    batch: MetricBatch  # what the topic's decoder returns: for kafka.topics.logs, a list of LogRecord (ingest.kafka_logs)
    timestamp_ms: int


@dataclass(slots=True)
class RebalanceHooks:
    """Called with non-empty lists of `TopicPartition` during `MetricConsumer.poll`.

    They run on kafka-python's IO thread while the polling thread waits, so they may read the
    caller's state and call `MetricConsumer.commit`, but must be quick (heartbeats wait meanwhile) and
    must not call `poll`.

    The group uses eager rebalancing: on every rebalance a member is first revoked all it owns, then
    assigned its new share, so `on_revoke` is the moment to checkpoint and commit.
    """

    on_assign: Callable[[list[TopicPartition]], None] = lambda partitions: None
    on_revoke: Callable[[list[TopicPartition]], None] = lambda partitions: None


def create_topics(bootstrap: str, topics: dict[str, int], timeout_s: float = 10.0) -> None:
    """Create each topic with its number of partitions (replication 1) unless it exists."""
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000))
    except KafkaError as exc:
        raise KafkaBusError(f"cannot reach Kafka at {bootstrap}: {exc}") from exc
    try:
        for name, partitions in topics.items():
            try:
                admin.create_topics([NewTopic(name, partitions, 1)])
            except TopicAlreadyExistsError:
                pass
            except KafkaError as exc:
                raise KafkaBusError(f"cannot create topic {name!r}: {exc}") from exc
    finally:
        admin.close()


class TopicProducer:
    """A KafkaProducer for one topic, with the errors every producer of ours maps the same way.

    Creating it checks the topic has partitions (`KafkaBusError` otherwise, or when the broker cannot be
    reached); `_sending()` wraps the sends of one call: a buffer that stays full for `max_block_ms` is
    `ingest.bus.BusFull`, any other client error `KafkaBusError`. Sends hold `_lock`, so an encoder's
    caches see one caller at a time. `producer` is a seam for tests; `options` go to KafkaProducer.
    """

    def __init__(self, bootstrap: str, topic: str, *, compression: str | None, max_block_ms: int,
                 producer: KafkaProducer | None = None, **options) -> None:
        self.topic = topic
        self._lock = threading.Lock()
        try:
            self._producer = producer or KafkaProducer(
                bootstrap_servers=bootstrap, compression_type=compression, max_block_ms=max_block_ms,
                max_request_size=4 << 20, acks="all", retries=5, **options,
            )
            partitions = self._producer.partitions_for(topic)
        except KafkaError as exc:
            raise KafkaBusError(f"cannot produce to {topic!r} at {bootstrap}: {exc}") from exc
        if not partitions:
            raise KafkaBusError(f"topic {topic!r} has no partitions (does it exist?)")
        self.n_partitions = len(partitions)

    @contextmanager
    def _sending(self) -> Iterator[KafkaProducer]:
        try:
            with self._lock:
                yield self._producer
        except KafkaTimeoutError as exc:
            raise BusFull(f"Kafka producer buffer for {self.topic!r} stayed full: {exc}") from exc
        except KafkaError as exc:
            raise KafkaBusError(f"cannot send to {self.topic!r}: {exc}") from exc

    def flush(self, timeout_s: float = 30.0) -> None:
        """Wait until every queued record is acknowledged by the broker."""
        try:
            self._producer.flush(timeout=timeout_s)
        except KafkaError as exc:
            raise KafkaBusError(f"flush to {self.topic!r} failed: {exc}") from exc

    def close(self, timeout_s: float = 10.0) -> None:
        self._producer.close(timeout=timeout_s)


class MetricProducer(TopicProducer):
    """Sends batches to `topic`, each series to its own partition, many points per record.

    Records are batched by the client (`linger_ms`, `batch_size`) and compressed (`compression`:
    zstd by default, which needs Kafka 2.1+ and the zstandard package, a dependency; over Tansu here it
    produced 2.3-2.5x the points/s of gzip and consumed 1.0-1.6x, bench/kafka.py; "gzip" or None for older
    brokers). `producer` is a seam for tests. `partition_key` (aiops.partitioning.SeriesPartitioner) keeps
    an entity's series on one partition; every producer of a topic must use the same one.
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        registry: SeriesRegistry,
        *,
        max_points: int = 16384,
        linger_ms: int = 5,
        batch_size: int = 1 << 20,
        compression: str | None = "zstd",
        max_block_ms: int = 10_000,
        request_timeout_ms: int = 10_000,
        bootstrap_timeout_ms: int = 10_000,
        producer: KafkaProducer | None = None,
        partition_key: PartitionKey | None = None,
    ) -> None:
        self.codec = RecordCodec(registry, max_points=max_points, partition_key=partition_key)  # its caches are not thread-safe; KafkaProducer is
        super().__init__(bootstrap, topic, compression=compression, max_block_ms=max_block_ms, producer=producer,
                         linger_ms=linger_ms, batch_size=batch_size, request_timeout_ms=request_timeout_ms,
                         bootstrap_timeout_ms=bootstrap_timeout_ms)

    def send(self, batch: MetricBatch) -> int:
        """Queue `batch` for sending; returns the number of records. Points of a series keep their order.

        Thread-safe (the API-only ingest calls it from worker threads): batches are encoded one at a time.
        """
        records = 0
        with self._sending() as producer:
            for partition, part in self.codec.split_by_partition(batch, self.n_partitions).items():
                for value in self.codec.encode(part):
                    producer.send(self.topic, value=value, partition=partition)
                    records += 1
        return records


@dataclass(slots=True)
class _Pending:
    """Offsets polled from one partition, in order, and which of them are done."""

    offsets: list[int] = field(default_factory=list)
    done: set[int] = field(default_factory=set)


class _Listener(AsyncConsumerRebalanceListener):
    """Runs on kafka-python's IO thread while the caller's thread waits inside `poll`.

    A blocking consumer call there would deadlock (kafka-python 3 refuses it), so offsets the caller
    commits from `on_revoke` are collected and committed here, awaited, before the partitions go.
    `_commit_offsets_sync_async` is kafka-python's own awaitable commit (private: hence the version pin).
    """

    def __init__(self, consumer: MetricConsumer) -> None:
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked):
        offsets = self._consumer._revoked(list(revoked))
        if offsets:
            await self._consumer._consumer._coordinator._commit_offsets_sync_async(offsets)

    async def on_partitions_assigned(self, assigned):
        self._consumer._assigned(list(assigned))


class MetricConsumer:
    """A member of consumer group `group_id` reading metric records from `topics`.

    Starts from the group's committed offsets, or the earliest ones for a partition it never committed.
    `dead_letter_topic` receives undecodable records; `producer` (a seam) sends them. `clock` gives
    the time of a dead letter's record when the broker gave none. `decoders` read topics that are not
    in our record format (e.g. ingest.kafka_mapping.JsonMapping.decode); they raise RecordError.
    """

    def __init__(
        self,
        bootstrap: str,
        topics: Sequence[str],
        group_id: str,
        registry: SeriesRegistry,
        *,
        dead_letter_topic: str,
        hooks: RebalanceHooks | None = None,
        session_timeout_ms: int = 6000,
        max_poll_records: int = 500,
        fetch_max_wait_ms: int = 500,
        request_timeout_ms: int = 30_000,
        bootstrap_timeout_ms: int = 10_000,
        client_id: str = "aiops",
        producer: KafkaProducer | None = None,
        clock: Callable[[], float] = time.time,
        decoders: Mapping[str, Callable[[bytes], MetricBatch]] | None = None,
    ) -> None:
        self.group_id = group_id
        self.dead_letter_topic = dead_letter_topic
        self.codec = RecordCodec(registry)
        self.decoders = dict(decoders or {})  # topic → decoder of records not in our format (RecordError if bad)
        self.hooks = hooks or RebalanceHooks()
        self._clock = clock
        self._pending: dict[TopicPartition, _Pending] = {}
        self._in_revoke = False
        self._deferred: dict[TopicPartition, OffsetAndMetadata] = {}  # committed from inside on_revoke
        self._unflushed = 0  # dead letters sent since the last flush
        self.dead_letters = 0
        try:
            self._consumer = KafkaConsumer(
                bootstrap_servers=bootstrap,
                group_id=group_id,
                client_id=client_id,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                session_timeout_ms=session_timeout_ms,
                heartbeat_interval_ms=max(100, session_timeout_ms // 3),
                request_timeout_ms=request_timeout_ms,
                max_poll_records=max_poll_records,
                fetch_max_wait_ms=fetch_max_wait_ms,
                bootstrap_timeout_ms=bootstrap_timeout_ms,
            )
        except KafkaError as exc:
            raise KafkaBusError(f"cannot consume {list(topics)} at {bootstrap}: {exc}") from exc
        try:
            self._consumer.subscribe(list(topics), listener=_Listener(self))
            self._dlq = producer or KafkaProducer(
                bootstrap_servers=bootstrap, acks="all", retries=5, linger_ms=5, bootstrap_timeout_ms=bootstrap_timeout_ms
            )
        except KafkaError as exc:
            self._consumer.close(autocommit=False)
            raise KafkaBusError(f"cannot send dead letters to {dead_letter_topic!r} at {bootstrap}: {exc}") from exc

    # -- rebalance -------------------------------------------------------------------------------

    def _revoked(self, partitions: list[TopicPartition]) -> dict[TopicPartition, OffsetAndMetadata]:
        """Calls `on_revoke`; returns the offsets it committed, for the listener to send."""
        if not partitions:  # kafka-python reports an empty revocation before the first join
            return {}
        self._in_revoke = True
        try:
            self.hooks.on_revoke(partitions)  # the caller may still `commit` what it has persisted
        finally:
            self._in_revoke = False
        offsets, self._deferred = self._deferred, {}
        for tp in partitions:
            self._pending.pop(tp, None)  # not committed → delivered again to the next owner
        return offsets

    def _assigned(self, partitions: list[TopicPartition]) -> None:
        if partitions:
            self.hooks.on_assign(partitions)

    # -- reading ---------------------------------------------------------------------------------

    def poll(self, timeout_s: float = 1.0, max_records: int | None = None) -> list[Received]:
        """Decoded records (each a batch of many points), waiting at most `timeout_s` for the first.

        If a dead letter cannot be sent, `KafkaBusError` is raised and the whole poll is rewound: the
        next poll delivers the same records again, so nothing is skipped and commits do not stall.
        """
        try:
            polled = self._consumer.poll(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        except KafkaError as exc:
            raise KafkaBusError(f"poll failed: {exc}") from exc
        out: list[Received] = []
        try:
            for tp, records in polled.items():
                pending = self._pending.setdefault(tp, _Pending())
                decode = self.decoders.get(tp.topic, self.codec.decode)
                for record in records:
                    pending.offsets.append(record.offset)
                    try:
                        batch = decode(record.value)
                    except RecordError as exc:
                        self._dead_letter(record, str(exc))
                        pending.done.add(record.offset)
                        continue
                    out.append(Received(tp.topic, tp.partition, record.offset, batch, record.timestamp))
        except KafkaBusError:
            self._rewind(polled)
            raise
        return out

    def _rewind(self, polled) -> None:
        """Forget this poll's records and seek back to them, so the next poll delivers them again."""
        for tp, records in polled.items():
            if not records:
                continue
            first = records[0].offset
            pending = self._pending.get(tp)
            if pending is not None:
                pending.offsets = [o for o in pending.offsets if o < first]
                pending.done = {o for o in pending.done if o < first}
            self._consumer.seek(tp, first)

    def _dead_letter(self, record, error: str) -> None:
        ts = record.timestamp if record.timestamp is not None and record.timestamp >= 0 else int(self._clock() * 1000)
        headers = [
            ("aiops.error", error.encode()),
            ("aiops.topic", record.topic.encode()),
            ("aiops.partition", str(record.partition).encode()),
            ("aiops.offset", str(record.offset).encode()),
            ("aiops.timestamp_ms", str(ts).encode()),
        ]
        try:
            self._dlq.send(self.dead_letter_topic, key=record.key, value=record.value, headers=headers)
        except KafkaError as exc:
            raise KafkaBusError(f"cannot send a dead letter to {self.dead_letter_topic!r}: {exc}") from exc
        self.dead_letters += 1
        self._unflushed += 1

    # -- acknowledging ---------------------------------------------------------------------------

    def commit(self, processed: Iterable[Received]) -> dict[TopicPartition, int]:
        """Mark `processed` done and commit, per partition, up to the first polled record not done.

        Dead letters are flushed first, so an offset is never committed before its dead letter is
        stored. Returns the offsets committed (the next offset to read, per partition).
        """
        for r in processed:
            pending = self._pending.get(TopicPartition(r.topic, r.partition))
            if pending is not None:  # None: the partition was revoked since; it will be redelivered
                pending.done.add(r.offset)
        to_commit: dict[TopicPartition, OffsetAndMetadata] = {}
        for tp, pending in self._pending.items():
            k = 0
            while k < len(pending.offsets) and pending.offsets[k] in pending.done:
                k += 1
            if k:
                last = pending.offsets[k - 1]
                pending.done.difference_update(pending.offsets[:k])
                del pending.offsets[:k]
                to_commit[tp] = OffsetAndMetadata(last + 1, "", -1)
        if not to_commit:
            return {}
        try:
            if self._unflushed:
                self._dlq.flush(timeout=30)  # the dead letter's own client: safe from the IO thread too
                self._unflushed = 0
            if self._in_revoke:
                self._deferred.update(to_commit)  # sent by the listener once `on_revoke` returns
            else:
                self._consumer.commit(offsets=to_commit)
        except KafkaError as exc:
            raise KafkaBusError(f"commit failed: {exc}") from exc
        return {tp: om.offset for tp, om in to_commit.items()}

    # -- backpressure and membership -------------------------------------------------------------

    def assignment(self) -> set[TopicPartition]:
        return set(self._consumer.assignment())

    def pause(self, partitions: Iterable[TopicPartition] | None = None) -> None:
        """Stop fetching from `partitions` (all assigned ones by default); the group membership stays."""
        self._consumer.pause(*(self.assignment() if partitions is None else partitions))

    def resume(self, partitions: Iterable[TopicPartition] | None = None) -> None:
        self._consumer.resume(*(self._consumer.paused() if partitions is None else partitions))

    def paused(self) -> set[TopicPartition]:
        return set(self._consumer.paused())

    def close(self) -> None:
        """Leave the group without committing; uncommitted records go to the next owner."""
        try:
            self._consumer.close(autocommit=False)
        finally:
            self._dlq.close(timeout=10)
