"""The Kafka record format of spans, and the producer that partitions them by trace or by service.

Spans cross Kafka twice (docs/scaling.md, "Spans"):

1. `kafka.topics.spans`: raw spans from `POST /v1/traces`, partitioned by **trace id**, so a trace's
   parent and child spans meet on one partition and its owner can name each span's caller service;
2. `kafka.topics.spans_by_service`: the spans that count (requests served, calls across services)
   with their caller resolved, partitioned by **service**, so one owner sees every request of a
   (service, operation) and every call into a service — RED quantiles and edge figures stay exact.

One Kafka record holds many spans as JSON columns (msgspec); names are a table:

    {"v": 1,
     "names": [str, …],          services and operations, each once
     "service": [int, …],        per span: index into `names`
     "op": [int, …],             per span: index into `names`
     "end": [float, …],          per span: end, unix seconds, finite and positive
     "dur": [float, …],          per span: duration in ms, finite, >= 0
     "err": [bool, …],           per span: status ERROR
     "counted": [bool, …],       per span: a request its service served (SERVER, CONSUMER or root)
     "trace": [str, …],          raw records: trace id (hex)
     "span": [str, …],           raw records: span id
     "parent": [str, …],         raw records: parent span id, "" for a root
     "caller": [int, …],         resolved records: index of the parent's service in `names`, -1 none
     "src": int,                 resolved records: the spans partition they were resolved from
     "wm": float}                resolved records: the latest span end that partition had seen (its
                                 watermark: the aggregator closes an interval once every source is past it)

Partitions: by service, Kafka's default partitioner (murmur2 of the UTF-8 name), as for a keyed
record; by trace id, the id's low 32 bits modulo the partition count — W3C trace ids are random, so
this spreads traces evenly without hashing each span in Python (murmur2 there costs ~5 µs a call).

Errors: `RecordError` (ingest.kafka_codec) for a record that is not JSON, not this shape, of another
version, with columns of different lengths, an index out of range, a bad time or duration; such a
record goes to the dead-letter topic like a bad metric record.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import msgspec
import numpy as np
from kafka import KafkaProducer

from detectors.red import SpanBatch
from ingest.kafka_bus import TopicProducer
from ingest.kafka_codec import RecordError, decode_json_record, group_by_partition, partition_hash

__all__ = ["SPAN_VERSION", "SpanProducer", "SpanRecord", "decode_spans", "encode_spans", "service_partition", "trace_partitions"]

SPAN_VERSION = 1
_MAX_NAME = 1024


class _Record(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    v: int
    names: list[str]
    service: list[int]
    op: list[int]
    end: list[float]
    dur: list[float]
    err: list[bool]
    counted: list[bool]
    trace: list[str] | None = None
    span: list[str] | None = None
    parent: list[str] | None = None
    caller: list[int] | None = None
    src: int | None = None
    wm: float | None = None


class SpanRecord(NamedTuple):
    """What one span record holds: the spans, and for resolved ones their source partition and its watermark."""

    spans: SpanBatch
    source: int | None = None
    watermark: float | None = None


_decoder = msgspec.json.Decoder(_Record)
_encoder = msgspec.json.Encoder()


def service_partition(service: str, n_partitions: int) -> int:
    """The partition of `kafka.topics.spans_by_service` a service's spans go to."""
    return partition_hash(service.encode()) % n_partitions


def trace_partitions(trace_id: np.ndarray, n_partitions: int) -> np.ndarray:
    """Per span, the partition of `kafka.topics.spans` its trace goes to (low 32 bits of the hex id)."""
    low = np.fromiter((int(t[-8:], 16) for t in trace_id.tolist()), np.int64, len(trace_id))
    return low % n_partitions


def encode_spans(spans: SpanBatch, *, raw: bool, source: int | None = None, watermark: float | None = None) -> bytes:
    """One record of `spans`: raw (trace, span and parent ids) or resolved (caller service names, and the
    source partition with its watermark)."""
    names, inverse = np.unique(np.concatenate([spans.service, spans.operation, *(
        [] if raw or spans.caller is None else [spans.caller])]).astype(str), return_inverse=True)
    n = len(spans)
    service, op = inverse[:n], inverse[n:2 * n]
    counted = np.ones(n, dtype=bool) if spans.counted is None else np.asarray(spans.counted, dtype=bool)
    record = _Record(SPAN_VERSION, names.tolist(), service.tolist(), op.tolist(), spans.end_s.tolist(),
                     spans.duration_ms.tolist(), np.asarray(spans.error, dtype=bool).tolist(), counted.tolist())
    if raw:
        if spans.trace_id is None:
            raise ValueError("raw spans need their trace ids")
        record.trace, record.span = spans.trace_id.tolist(), spans.span_id.tolist()
        record.parent = ["" if p is None else p for p in spans.parent_id.tolist()]
    elif spans.caller is not None:
        caller = inverse[2 * n:].copy()
        caller[spans.caller == ""] = -1
        record.caller = caller.tolist()
    if not raw:
        record.src, record.wm = source, watermark
    return _encoder.encode(record)


def decode_spans(value: bytes | None) -> SpanRecord:
    """The spans a record holds (callers resolved when it carries them); `RecordError` if it is not valid."""
    rec = decode_json_record(_decoder, value, "span", SPAN_VERSION)
    n = len(rec.end)
    columns = {"service": rec.service, "op": rec.op, "dur": rec.dur, "err": rec.err, "counted": rec.counted,
               **{k: c for k, c in (("trace", rec.trace), ("span", rec.span), ("parent", rec.parent),
                                    ("caller", rec.caller)) if c is not None}}
    uneven = {k: len(c) for k, c in columns.items() if len(c) != n}
    if uneven:
        raise RecordError(f"span record columns differ in length from end ({n}): {uneven}")
    if (rec.trace is None) != (rec.span is None) or (rec.span is None) != (rec.parent is None):
        raise RecordError("a raw span record needs trace, span and parent together")
    if rec.wm is not None and not (rec.wm > 0 and rec.wm < float("inf")) or (rec.src is not None and rec.src < 0):
        raise RecordError("src and wm: a partition >= 0 and finite positive unix seconds")
    if any(len(name) > _MAX_NAME for name in rec.names):
        raise RecordError(f"a name is longer than {_MAX_NAME} characters")
    names = np.array(rec.names + [""], dtype=object)  # [-1]: "" (no caller)
    k = len(rec.names)
    service, op = np.array(rec.service, dtype=np.int64), np.array(rec.op, dtype=np.int64)
    caller = None if rec.caller is None else np.array(rec.caller, dtype=np.int64)
    for key, index, low in (("service", service, 0), ("op", op, 0), ("caller", caller, -1)):
        if index is not None and n and (index.min() < low or index.max() >= k):
            raise RecordError(f"{key}: an index is outside [{low}, {k})")
    end, dur = np.array(rec.end, dtype=np.float64), np.array(rec.dur, dtype=np.float64)
    if n and not (np.isfinite(end).all() and end.min() > 0):
        raise RecordError("end: every span needs a finite positive unix time")
    if n and not (np.isfinite(dur).all() and dur.min() >= 0):
        raise RecordError("dur: every span needs a finite duration >= 0 ms")

    def ids(column: list[str] | None) -> np.ndarray:
        return np.array(column if column is not None else [""] * n, dtype=object)

    spans = SpanBatch(ids(rec.span), ids(rec.parent), names[service], names[op], end, dur,
                      np.array(rec.err, dtype=bool), np.array(rec.counted, dtype=bool),
                      None if rec.trace is None else ids(rec.trace), None if caller is None else names[caller])
    return SpanRecord(spans, rec.src, rec.wm)


class SpanProducer(TopicProducer):
    """Sends spans to `topic`, partitioned by trace id (`by="trace"`, raw) or service (`by="service"`).

    `send` waits at most `max_block_ms` for buffer space, then raises `BusFull`; broker errors are
    `ingest.kafka_bus.KafkaBusError`. `producer` is a seam for tests.
    """

    def __init__(self, bootstrap: str, topic: str, *, by: Literal["trace", "service"],
                 compression: str | None = "zstd", max_block_ms: int = 10_000, max_spans: int = 8192,
                 producer: KafkaProducer | None = None) -> None:
        self.by = by
        self.max_spans = max_spans
        self._service_partitions: dict[str, int] = {}
        super().__init__(bootstrap, topic, compression=compression, max_block_ms=max_block_ms, producer=producer,
                         linger_ms=5, batch_size=1 << 20)

    def partitions(self, spans: SpanBatch) -> np.ndarray:
        """Per span, the partition it goes to."""
        if self.by == "trace":
            return trace_partitions(spans.trace_id, self.n_partitions)
        names, inverse = np.unique(spans.service.astype(str), return_inverse=True)
        table = self._service_partitions
        for name in names.tolist():  # a loop over distinct services
            if name not in table:
                table[name] = service_partition(name, self.n_partitions)
        return np.array([table[name] for name in names.tolist()], dtype=np.int64)[inverse]

    def send(self, spans: SpanBatch, source: int | None = None, watermark: float | None = None) -> int:
        """Queue the spans for sending; returns the number of Kafka records. Thread-safe.

        Resolved spans carry the partition they were resolved from and its watermark."""
        if not len(spans):
            return 0
        records = []
        for p, idx in group_by_partition(self.partitions(spans)):  # a loop over partitions, then chunks
            for start in range(0, len(idx), self.max_spans):
                part = spans.take(idx[start:start + self.max_spans])
                records.append((p, encode_spans(part, raw=self.by == "trace", source=source, watermark=watermark)))
        with self._sending() as producer:
            for p, value in records:
                producer.send(self.topic, value=value, partition=p)
        return len(records)
