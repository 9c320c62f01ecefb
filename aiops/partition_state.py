"""Detector state follows Kafka partitions: a worker that takes a partition over continues warm.

A worker notes which series each partition it owns has carried (a boolean mask over its registry's
ids, updated with one vectorized write per record). To checkpoint a partition — periodically, on
revocation, at shutdown — it saves the detector state of those series alone
(`DetectionRouter.series_state`), keyed by series *identity* (name + labels: ids are local to each
process), with the offset up to which the state has seen the partition. On assignment the new owner
loads it: identities are interned into its own registry and the rows land under its own ids.

The checkpoint's offset tells the worker which records to skip on replay (they are in the state
already). Checkpoints live in the store's `checkpoints` table as
`partition:<group>:<topic>:<partition>` (detectors.checkpoint.pack: npz, no pickle), beside
`applied:<group>:<topic>:<partition>`, the offset below which a record's effects (anomalies, alerts)
are stored — written in the same transaction as those effects (aiops.worker), and only while the
worker still holds the partition's ownership epoch (aiops.fencing).

Forecast history (aiops.forecasts) follows partitions the same way: the checkpoint carries the
downsampled history of the partition's watched series under `forecast_history`, so the new owner
forecasts them at once instead of collecting `forecasting.history_days` of points again; a revoked
partition's series are no longer forecast here. Entity rows (aiops.entities) of a revoked
partition's series are cleared likewise; entity forests are not checkpointed (docs/scaling.md).
"""

from __future__ import annotations

import logging

import msgspec
import numpy as np
from kafka import TopicPartition
from sqlalchemy import Connection

from aiops.detection import DetectionRouter
from aiops.entities import EntityMonitor
from aiops.fencing import PartitionEpochs
from aiops.forecasts import ForecastService
from aiops.store import repository
from detectors.checkpoint import CheckpointError, pack, unpack
from ingest.registry import SeriesRegistry, grow_id_map, series_key

__all__ = ["PartitionState", "applied_name", "load_applied", "save_applied", "state_name"]

log = logging.getLogger(__name__)

_entries = msgspec.json.Decoder(list[tuple[str, dict[str, str]]])


def state_name(group: str, tp: TopicPartition) -> str:
    return f"partition:{group}:{tp.topic}:{tp.partition}"[:128]


def applied_name(group: str, tp: TopicPartition) -> str:
    return f"applied:{group}:{tp.topic}:{tp.partition}"[:128]


class PartitionState:
    """Which series each owned partition carries; their state to and from the store."""

    def __init__(self, detection: DetectionRouter, registry: SeriesRegistry, group: str,
                 forecasts: ForecastService | None = None, entities: EntityMonitor | None = None) -> None:
        self.detection = detection
        self.registry = registry
        self.group = group
        self.forecasts = forecasts
        self.entities = entities
        self._members: dict[TopicPartition, np.ndarray] = {}

    def observe(self, tp: TopicPartition, series_ids: np.ndarray) -> None:
        """Note that `series_ids` came on `tp` (vectorized: one masked write)."""
        if len(series_ids) == 0:
            return
        mask = self._members.get(tp, np.zeros(0, dtype=bool))
        mask = grow_id_map(mask, int(series_ids.max()) + 1, False)
        mask[series_ids] = True
        self._members[tp] = mask

    def series_of(self, tp: TopicPartition) -> np.ndarray:
        mask = self._members.get(tp)
        return np.zeros(0, dtype=np.int64) if mask is None else np.flatnonzero(mask)

    def save(self, conn: Connection, offsets: dict[TopicPartition, int], now: float) -> int:
        """Checkpoint each partition of `offsets` (the next offset its state has not seen); returns bytes written."""
        tps = [tp for tp in offsets if len(self.series_of(tp))]
        groups = [self.series_of(tp) for tp in tps]
        written = 0
        for tp, ids, state in zip(tps, groups, self.detection.series_state(groups)):
            keys = [self.registry.key(int(sid)) for sid in ids]  # per series, but only at checkpoints
            state["offset"] = int(offsets[tp])
            history = self.forecasts.series_state(ids) if self.forecasts is not None else None
            if history is not None:
                state["forecast_history"] = history
            state["identities"] = msgspec.json.encode([(name, dict(labels)) for name, labels in keys]).decode()
            data = pack(state)
            repository.save_checkpoint(conn, state_name(self.group, tp), data, now)
            written += len(data)
        return written

    def load(self, conn: Connection, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        """Restore the checkpoints of `tps`; returns, per partition restored, the offset its state has seen."""
        offsets: dict[TopicPartition, int] = {}
        for tp in tps:
            saved = repository.load_checkpoint(conn, state_name(self.group, tp))
            if saved is None:
                continue
            try:
                state = unpack(saved[0])
                ids = np.array(
                    [self.registry.intern(series_key(name, labels)) for name, labels in _entries.decode(state["identities"])],
                    dtype=np.int64,
                )
                self.detection.load_series_state(state, ids)
            except (CheckpointError, ValueError, KeyError, msgspec.DecodeError) as exc:  # damaged or old: start cold
                log.warning("partition state not restored", extra={"partition": str(tp), "error": str(exc)})
                continue
            self.observe(tp, ids)
            offsets[tp] = int(state["offset"])
            if self.forecasts is not None and "forecast_history" in state:
                self._load_history(tp, state["forecast_history"], ids)
        return offsets

    def _load_history(self, tp: TopicPartition, history: dict, ids: np.ndarray) -> None:
        try:
            self.forecasts.load_series_state(history, ids)
        except (ValueError, KeyError) as exc:  # another step or length now: the history is collected again
            log.warning("forecast history not restored", extra={"partition": str(tp), "error": str(exc)})

    def forget(self, tps: list[TopicPartition]) -> None:
        """Drop the revoked partitions; their series are no longer forecast nor scored as entity features
        here (unless another owned partition carries them too: mapped topics are partitioned by their
        producers)."""
        gone = [self._members.pop(tp) for tp in tps if tp in self._members]
        if (self.forecasts is None and self.entities is None) or not gone:
            return
        mask = np.zeros(max(len(m) for m in gone), dtype=bool)
        for m in gone:  # a loop over partitions
            mask[: len(m)] |= m
        for m in self._members.values():
            n = min(len(m), len(mask))
            mask[:n] &= ~m[:n]
        ids = np.flatnonzero(mask)
        if self.forecasts is not None:
            self.forecasts.forget(ids)
        if self.entities is not None:
            self.entities.forget(ids)


def load_applied(conn: Connection, group: str, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
    """Per partition, the offset below which every record's effects are stored."""
    out = {}
    for tp in tps:
        saved = repository.load_checkpoint(conn, applied_name(group, tp))
        if saved is not None:
            out[tp] = int(saved[0].decode())
    return out


def save_applied(conn: Connection, epochs: PartitionEpochs, offsets: dict[TopicPartition, int], now: float) -> None:
    """Store the applied offsets of partitions this worker still owns (`PartitionFenced` otherwise):
    called in the transaction that stores the offsets' effects, so a fenced batch stores nothing."""
    epochs.check(conn, offsets)
    for tp, offset in offsets.items():
        repository.save_checkpoint(conn, applied_name(epochs.group, tp), str(int(offset)).encode(), now)
