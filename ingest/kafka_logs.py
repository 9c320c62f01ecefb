"""The Kafka record format of log records, and the producer that keys them by log source.

One Kafka record holds many log lines of one source, as JSON columns (msgspec):

    {"v": 1,                                   version
     "sources": [{label: value}, …],           the labels of each resource the lines came from
     "source": [int, …],                       per line: index into `sources`
     "ts": [float, …],                         per line: unix seconds, finite and positive
     "severity": [int, …],                     per line: OpenTelemetry SeverityNumber 0-24
     "body": [str, …]}                         per line: the message

Key: the log source identity — the `service`, `host`, `cluster`, `env` labels the log monitor counts by
(`source_key`) — so a source always lands on one partition of `kafka.topics.logs` (Kafka's default
partitioner: murmur2 of the key), and one worker at a time mines it: its template ids stay stable.
Lines are grouped by source before encoding; at most `max_lines` lines a record.

Errors: `RecordError` (ingest.kafka_codec) for a record that is not JSON, not this shape, of another
version, with columns of different lengths, an index out of range, a bad time or severity; such a
record goes to the dead-letter topic like a bad metric record.
"""

from __future__ import annotations

import msgspec
from kafka import KafkaProducer

from detectors.types import LogRecord
from ingest.kafka_bus import TopicProducer
from ingest.kafka_codec import RecordError, decode_json_record

__all__ = ["LOG_VERSION", "LogProducer", "decode_logs", "encode_logs", "source_key"]

LOG_VERSION = 1
SOURCE_LABELS = ("service", "host", "cluster", "env")  # what aiops.logmonitor counts a source by
_MAX_BODY = 64 * 1024


class _Record(msgspec.Struct, forbid_unknown_fields=True):
    v: int
    sources: list[dict[str, str]]
    source: list[int]
    ts: list[float]
    severity: list[int]
    body: list[str]


_decoder = msgspec.json.Decoder(_Record)
_encoder = msgspec.json.Encoder()


def source_key(labels: dict[str, str]) -> bytes:
    """The partitioning key of a log line: its source labels as sorted JSON."""
    return _encoder.encode({k: labels[k] for k in SOURCE_LABELS if k in labels})


def encode_logs(records: list[LogRecord], max_lines: int = 4096) -> list[tuple[bytes, bytes]]:
    """(key, value) Kafka records holding `records`: one or more per source, lines in order."""
    by_source: dict[bytes, list[LogRecord]] = {}
    for r in records:  # a loop over lines: each is text anyway
        by_source.setdefault(source_key(r.labels), []).append(r)
    out = []
    for key, lines in by_source.items():
        for start in range(0, len(lines), max_lines):
            chunk = lines[start : start + max_lines]
            tables: dict[int, int] = {}  # id(labels dict) → index: lines of one resource share it
            sources: list[dict[str, str]] = []
            index = []
            for r in chunk:
                i = tables.get(id(r.labels))
                if i is None:
                    i = tables[id(r.labels)] = len(sources)
                    sources.append(r.labels)
                index.append(i)
            value = _encoder.encode(_Record(LOG_VERSION, sources, index, [r.ts for r in chunk],
                                            [r.severity for r in chunk], [r.body for r in chunk]))
            out.append((key, value))
    return out


def decode_logs(value: bytes | None) -> list[LogRecord]:
    """The log lines a record holds; `RecordError` if it is not a valid log record."""
    rec = decode_json_record(_decoder, value, "log", LOG_VERSION)
    n = len(rec.body)
    if not (len(rec.source) == len(rec.ts) == len(rec.severity) == n):
        raise RecordError(f"log record columns differ in length: source {len(rec.source)}, ts {len(rec.ts)}, "
                          f"severity {len(rec.severity)}, body {n}")
    k = len(rec.sources)
    out = []
    for i in range(n):
        s, ts, sev, body = rec.source[i], rec.ts[i], rec.severity[i], rec.body[i]
        if not 0 <= s < k:
            raise RecordError(f"line {i}: source index {s} out of range [0, {k})")
        if not (ts > 0 and ts < float("inf")):
            raise RecordError(f"line {i}: ts must be finite positive unix seconds, got {ts}")
        if not 0 <= sev <= 24:
            raise RecordError(f"line {i}: severity must be 0-24, got {sev}")
        if len(body) > _MAX_BODY:
            raise RecordError(f"line {i}: body longer than {_MAX_BODY} characters")
        out.append(LogRecord(ts, body, rec.sources[s], sev))
    return out


class LogProducer(TopicProducer):
    """Sends log records to `topic`, keyed by source, compressed like the metric producer.

    `send` waits at most `max_block_ms` for buffer space, then raises `BusFull`; broker errors are
    `ingest.kafka_bus.KafkaBusError`. `producer` is a seam for tests.
    """

    def __init__(self, bootstrap: str, topic: str, *, compression: str | None = "zstd", max_block_ms: int = 10_000,
                 max_lines: int = 4096, producer: KafkaProducer | None = None) -> None:
        self.max_lines = max_lines
        super().__init__(bootstrap, topic, compression=compression, max_block_ms=max_block_ms, producer=producer,
                         linger_ms=5, batch_size=1 << 20)

    def send(self, records: list[LogRecord]) -> int:
        """Queue the records for sending; returns the number of Kafka records. Thread-safe."""
        encoded = encode_logs(records, self.max_lines)
        with self._sending() as producer:
            for key, value in encoded:
                producer.send(self.topic, key=key, value=value)
        return len(encoded)
