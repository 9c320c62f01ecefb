"""The Kafka record format of metric points: many points of many series in one compact message.

Series ids are dense ints local to one process's registry, so a record carries series *identities*
(name + sorted labels) once each, in a small JSON table, and the points as three little-endian
numpy columns indexing into that table:

    offset  size        field
    0       4           magic b"AIOM"
    4       1           version (1)
    5       3           reserved, zero
    8       4           n_series  (uint32)
    12      4           n_points  (uint32)
    16      4           table_len (uint32), bytes of the series table
    20      table_len   series table: JSON array of [name, {label: value}], labels sorted by key
    …       4·n         series index of each point (int32, into the table)
    …       8·n         ts, unix seconds (float64)
    …       8·n         value (float64)

Why binary columns and not a JSON record (bench/kafka.py prints both): the points cost a few numpy
calls however many a record holds, so what remains is per series and per record. With 100 points a
series in a record, binary decodes ~15x and encodes 3x faster than the same columns as msgspec JSON;
with each series once a record (a scrape), the identity table dominates both formats (~80 of ~100
bytes a point raw, ~7 compressed) and binary decodes only ~1.4x faster, encodes on par. A producer-side dictionary of
identities would remove that cost but makes records depend on state; not done. Each process interns
identities into its own registry on decode, caching table entry → id.

Partitioning: a series' partition is murmur2(its partition key) mod partitions. The key is, by
default, the series' table entry (`series_entry`: Kafka's own default partitioner over the identity),
so one series always lands on one partition and a consumer group spreads series (and so detector
state) over its members. A codec given another `partition_key` (aiops.partitioning.SeriesPartitioner:
the series of one entity share a key) computes it once per series, at first sight.
`split_by_partition` cuts a batch into one record set per partition before producing.

Errors: `RecordError` (a record that cannot be decoded: bad magic, unknown version, inconsistent
lengths, bad index, non-finite values, a bad name or labels, the series limit reached).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping

import msgspec
import numpy as np
from kafka.partitioner.default import murmur2

from detectors.types import MetricBatch
from ingest.registry import SeriesLimitReached, SeriesRegistry, series_key

__all__ = ["MAGIC", "VERSION", "PartitionKey", "RecordCodec", "RecordError", "decode_json_record", "group_by_partition",
           "partition_hash", "series_entry"]

MAGIC = b"AIOM"
VERSION = 1
_HEADER = struct.Struct("<4sB3xIII")
_MAX_NAME = 256
_MAX_LABELS = 64

PartitionKey = Callable[[str, Mapping[str, str]], bytes]  # (name, labels) → the bytes a partition is hashed from


def series_entry(name: str, labels: Mapping[str, str]) -> bytes:
    """A series' identity as a record's table entry (labels sorted by key): the default partition key."""
    return msgspec.json.encode((name, dict(sorted(labels.items()))))


def partition_hash(key: bytes) -> int:
    """murmur2 of `key`, made positive as Kafka's default partitioner does; mod partitions gives the partition."""
    return murmur2(key) & 0x7FFFFFFF


def group_by_partition(parts: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """(partition, indices) per partition in `parts` (one per item), indices in their original order."""
    order = np.argsort(parts, kind="stable")
    return [(int(parts[idx[0]]), idx) for idx in np.split(order, np.flatnonzero(np.diff(parts[order])) + 1) if len(idx)]


class RecordError(Exception):
    """A Kafka record is not a valid metric record; it goes to the dead-letter topic."""


def decode_json_record(decoder: msgspec.json.Decoder, value: bytes | None, what: str, version: int):
    """A JSON-column record (logs, spans) decoded by `decoder`, its `v` checked; `RecordError` otherwise."""
    if not value:
        raise RecordError(f"empty {what} record")
    try:
        rec = decoder.decode(value)
    except msgspec.DecodeError as exc:
        raise RecordError(f"not a {what} record: {exc}") from exc
    if rec.v != version:
        raise RecordError(f"unsupported {what} record version {rec.v}; this reader knows {version}")
    return rec


class RecordCodec:
    """Encodes batches of `registry`'s series into records, and records back into batches.

    Caches, per series id, its table entry and its hash (both bounded by the registry's size) and, per
    table entry seen on decode, its id. `max_points` caps the points of one record, so a record stays
    well under the broker's message size limit (20 bytes a point: 16384 points ≈ 330 kB raw).
    `partition_key` names the bytes a series' partition is hashed from (the identity by default).
    """

    def __init__(self, registry: SeriesRegistry, max_points: int = 16384,
                 partition_key: PartitionKey | None = None) -> None:
        if max_points < 1:
            raise ValueError(f"max_points must be at least 1, got {max_points}")
        self.registry = registry
        self.max_points = max_points
        self.partition_key = partition_key
        self._entries: list[bytes] = []  # sid → JSON table entry
        self._hashes = np.zeros(0, dtype=np.int64)  # sid → murmur2 of its partition key, positive
        self._table_decoder = msgspec.json.Decoder(list[msgspec.Raw])
        self._entry_decoder = msgspec.json.Decoder(tuple[str, dict[str, str]])
        self._ids: dict[bytes, int] = {}  # table entry → sid

    # -- encode ----------------------------------------------------------------------------------

    def _ensure_cached(self, upto: int) -> None:
        if upto < len(self._entries):
            return
        fresh = []
        for sid in range(len(self._entries), upto + 1):  # a loop over series at first sight
            name, labels = self.registry.key(sid)
            entry = msgspec.json.encode((name, dict(labels)))
            self._entries.append(entry)
            fresh.append(partition_hash(entry if self.partition_key is None else self.partition_key(name, dict(labels))))
        self._hashes = np.concatenate([self._hashes, np.array(fresh, dtype=np.int64)])

    def partitions_of(self, series_id: np.ndarray, n_partitions: int) -> np.ndarray:
        """The partition of each series in `series_id` among `n_partitions`."""
        if len(series_id) == 0:
            return np.zeros(0, dtype=np.int64)
        self._ensure_cached(int(series_id.max()))
        return self._hashes[series_id] % n_partitions

    def split_by_partition(self, batch: MetricBatch, n_partitions: int) -> dict[int, MetricBatch]:
        """The points of `batch` grouped by partition; each group keeps arrival order."""
        parts = self.partitions_of(batch.series_id, n_partitions)
        return {partition: batch.take(idx) for partition, idx in group_by_partition(parts)}

    def encode(self, batch: MetricBatch) -> list[bytes]:
        """One or more records (at most `max_points` points each) holding `batch`, in order."""
        records = []
        for start in range(0, len(batch), self.max_points):
            records.append(self._encode_one(batch.take(slice(start, start + self.max_points))))
        return records

    def _encode_one(self, batch: MetricBatch) -> bytes:
        n = len(batch)
        uniq, index = np.unique(batch.series_id, return_inverse=True)
        if len(uniq):
            self._ensure_cached(int(uniq[-1]))
        table = b"[" + b",".join(self._entries[sid] for sid in uniq.tolist()) + b"]"
        return b"".join(
            (
                _HEADER.pack(MAGIC, VERSION, len(uniq), n, len(table)),
                table,
                index.astype("<i4", copy=False).tobytes(),
                batch.ts.astype("<f8", copy=False).tobytes(),
                batch.value.astype("<f8", copy=False).tobytes(),
            )
        )

    # -- decode ----------------------------------------------------------------------------------

    def decode(self, record: bytes) -> MetricBatch:
        """The batch a record holds, its series interned into the registry; `RecordError` if invalid."""
        if record is None or len(record) < _HEADER.size:
            raise RecordError(f"record too short: {0 if record is None else len(record)} bytes")
        magic, version, n_series, n, table_len = _HEADER.unpack_from(record)
        if magic != MAGIC:
            raise RecordError(f"not a metric record: magic {magic!r}, expected {MAGIC!r}")
        if version != VERSION:
            raise RecordError(f"unsupported record version {version}; this reader knows {VERSION}")
        expected = _HEADER.size + table_len + 20 * n
        if len(record) != expected:
            raise RecordError(f"record is {len(record)} bytes; its header implies {expected}")
        view = memoryview(record)
        pos = _HEADER.size
        sids = self._intern_table(view[pos : pos + table_len], n_series)
        pos += table_len
        index = np.frombuffer(view, dtype="<i4", count=n, offset=pos)
        ts = np.frombuffer(view, dtype="<f8", count=n, offset=pos + 4 * n)
        value = np.frombuffer(view, dtype="<f8", count=n, offset=pos + 12 * n)
        if n and (index.min() < 0 or index.max() >= n_series):
            raise RecordError(f"series index out of range [0, {n_series})")
        if not (np.isfinite(value).all() and np.isfinite(ts).all() and (ts > 0).all()):
            raise RecordError("values must be finite and timestamps positive unix seconds")
        return MetricBatch.from_arrays(sids[index], ts, value)

    def _intern_table(self, table: memoryview, n_series: int) -> np.ndarray:
        try:
            entries = self._table_decoder.decode(table)
        except msgspec.DecodeError as exc:
            raise RecordError(f"series table: {exc}") from exc
        if len(entries) != n_series:
            raise RecordError(f"series table has {len(entries)} entries; the header says {n_series}")
        keys = [bytes(raw) for raw in entries]
        get = self._ids.get
        found = [get(key) for key in keys]
        if None in found:  # identities not seen in this spelling before
            found = [sid if sid is not None else self._intern_entry(i, keys[i]) for i, sid in enumerate(found)]
        return np.array(found, dtype=np.int32)

    def _intern_entry(self, i: int, key: bytes) -> int:
        try:
            name, labels = self._entry_decoder.decode(key)
        except msgspec.DecodeError as exc:
            raise RecordError(f"series table entry {i}: {exc}") from exc
        if not name or len(name) > _MAX_NAME:
            raise RecordError(f"series table entry {i}: name must be 1 to {_MAX_NAME} characters")
        if len(labels) > _MAX_LABELS or any(not k for k in labels):
            raise RecordError(f"series table entry {i}: at most {_MAX_LABELS} labels with non-empty names")
        try:
            sid = self.registry.intern(series_key(name, labels))
        except SeriesLimitReached as exc:
            raise RecordError(f"series table entry {i}: {exc}") from exc
        if len(self._ids) > 1_000_000:  # bounded: spellings of an identity are the producer's to choose
            self._ids.clear()
        self._ids[key] = sid
        return sid
