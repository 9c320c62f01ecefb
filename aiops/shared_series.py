"""Store ids for series when several processes (Kafka workers) write one store's `series` table.

In the embedded mode the registry's dense ids *are* the store's ids: one process assigns them. Kafka
workers each have their own registry (ids in order of first sight in that process), so their ids
cannot be written as they are. Only series with something to store (an anomaly, an alert) need a
store id, and those are rare; so each is resolved when first persisted, by identity (name + labels):
an existing row is reused, else a row is inserted with the next id. Allocation is serialized by a
transaction-scoped advisory lock on PostgreSQL and by SQLite's single writer, so ids stay dense and
unique, and the API (which loads the table into its own registry) reads them as before.

Resolved ids are kept per local id; those assigned inside a transaction that rolls back are dropped
(`rollback`), the rest kept (`commit`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import numpy as np
from sqlalchemy import Connection, func, select, text

from aiops.alerts import AnomalyRecord
from aiops.store import repository
from aiops.store.schema import series
from ingest.registry import SeriesKey, SeriesRegistry, grow_id_map

__all__ = ["StoreSeries"]

_LOCK_KEY = 0x5E71E5  # pg_advisory_xact_lock key of series allocation


class StoreSeries:
    """Maps `registry`'s local ids to the store's series ids (see the module docstring)."""

    def __init__(self, registry: SeriesRegistry) -> None:
        self.registry = registry
        self._store_id = np.full(0, -1, dtype=np.int64)
        self._pending: dict[int, int] = {}

    def store_id(self, local: int) -> int | None:
        if local < len(self._store_id) and self._store_id[local] >= 0:
            return int(self._store_id[local])
        return self._pending.get(local)

    def resolve(self, conn: Connection, records: list[AnomalyRecord], now: float) -> list[AnomalyRecord]:
        """`records` with store series ids, inserting the series no process has stored yet."""
        ids = self.resolve_ids(conn, [r.series_id for r in records], now)
        return [replace(r, series_id=sid) for r, sid in zip(records, ids)]

    def resolve_ids(self, conn: Connection, local_ids: list[int], now: float) -> list[int]:
        """The store ids of these local ids (stored forecasts name series by them), inserting new series."""
        missing = sorted({sid for sid in local_ids if self.store_id(sid) is None})
        if missing:
            self._allocate(conn, missing, now)
        return [self.store_id(sid) for sid in local_ids]

    def _allocate(self, conn: Connection, missing: list[int], now: float) -> None:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        keys: dict[int, SeriesKey] = {sid: self.registry.key(sid) for sid in missing}
        names = sorted({name for name, _ in keys.values()})
        existing = {
            (row.name, tuple(sorted(row.labels.items()))): row.id
            for row in conn.execute(select(series.c.id, series.c.name, series.c.labels).where(series.c.name.in_(names)))
        }
        next_id = int(conn.execute(select(func.coalesce(func.max(series.c.id), -1))).scalar_one()) + 1
        new: list[tuple[int, SeriesKey]] = []
        for sid, key in keys.items():
            found = existing.get(key)
            if found is None:
                found = next_id
                new.append((found, key))
                next_id += 1
            self._pending[sid] = found
        repository.insert_series(conn, new, now)

    def local_ids(self, conn: Connection, store_ids: np.ndarray) -> np.ndarray:
        """This process's ids of series named by store id (-1 for those it has not seen), by identity."""
        rows = conn.execute(select(series.c.id, series.c.name, series.c.labels).where(series.c.id.in_(store_ids.tolist())))
        local = {row.id: self.registry.get((row.name, tuple(sorted(row.labels.items())))) for row in rows}
        return np.array([-1 if local.get(int(s)) is None else local[int(s)] for s in store_ids], dtype=np.int64)

    @contextmanager
    def kept_if_stored(self) -> Iterator[None]:
        """Wrap a store transaction that may allocate ids: they are kept if it commits, forgotten if it raises."""
        try:
            yield
        except BaseException:
            self.rollback()
            raise
        self.commit()

    def commit(self) -> None:
        if self._pending:
            top = max(self._pending) + 1
            self._store_id = grow_id_map(self._store_id, top, -1)
            for local, store in self._pending.items():
                self._store_id[local] = store
            self._pending.clear()

    def rollback(self) -> None:
        self._pending.clear()
