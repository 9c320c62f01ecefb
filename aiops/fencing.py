"""Fencing: only a partition's latest owner stores the effects of its records.

Kafka moves a partition to a new group member when the old one's session expires, but the old one
does not know it until it next talks to the coordinator: a worker paused longer than
`kafka.session_timeout_ms` (a long GC, a stalled store) may go on storing a batch the successor
stores too — a "zombie". Kafka refuses the zombie's offset commits, not its writes to our store.

So the store keeps an ownership epoch per (group, topic, partition) (`partition_epochs`). A worker
claims each partition assigned to it — the epoch raised by one, in the transaction that loads the
partition's state and applied offset — and remembers its epoch. Every transaction that writes a
partition's effects (the applied offset with its anomalies and alerts, detector and miner
checkpoints) first checks, with a compare-and-set on that row, that the epoch is still its own; if
a successor has claimed the partition, `PartitionFenced` rolls the whole transaction back.

On PostgreSQL the compare-and-set holds the row lock until the transaction ends: a successor's claim
waits for it, and then loads what the (until then rightful) owner stored. SQLite has one writer.

Exceptions:

    PartitionFenced   the partition has a newer owner: nothing of this transaction is stored
"""

from __future__ import annotations

from collections.abc import Iterable

from kafka import TopicPartition
from sqlalchemy import Connection

from aiops.store import repository

__all__ = ["PartitionEpochs", "PartitionFenced"]


class PartitionFenced(Exception):
    """A newer owner claimed the partition: this worker must not store its effects any more."""

    def __init__(self, group: str, tp: TopicPartition, mine: int | None, current: int | None) -> None:
        self.group, self.tp, self.mine, self.current = group, tp, mine, current
        held = f"epoch {mine}" if mine is not None else "no epoch (never claimed here)"
        super().__init__(
            f"partition {tp.topic}[{tp.partition}] of group {group!r} is fenced: this worker holds {held}, "
            f"the store has epoch {current} (a newer owner claimed it); nothing of this transaction is stored"
        )


class PartitionEpochs:
    """The epochs a worker holds, per owned partition of its group."""

    def __init__(self, group: str) -> None:
        self.group = group
        self._mine: dict[TopicPartition, int] = {}

    def claim(self, conn: Connection, tps: Iterable[TopicPartition], now: float) -> dict[TopicPartition, int]:
        """Take `tps` over in the store (in the caller's transaction); returns the epochs now held."""
        claimed = {tp: repository.claim_partition(conn, self.group, tp.topic, tp.partition, now) for tp in sorted(tps)}
        self._mine.update(claimed)
        return claimed

    def check(self, conn: Connection, tps: Iterable[TopicPartition]) -> None:
        """Raise `PartitionFenced` unless every one of `tps` is still this worker's, in the caller's transaction."""
        for tp in sorted(tps):  # one lock order for every transaction
            mine = self._mine.get(tp)
            if mine is None or not repository.hold_partition(conn, self.group, tp.topic, tp.partition, mine):
                raise PartitionFenced(self.group, tp, mine, repository.partition_epoch(conn, self.group, tp.topic, tp.partition))

    def held(self, tp: TopicPartition) -> int | None:
        return self._mine.get(tp)

    def forget(self, tps: Iterable[TopicPartition]) -> None:
        for tp in tps:
            self._mine.pop(tp, None)
