"""Verification watches: the pipeline tells waiting executions whether their series looks normal again.

An execution that verifies (or checks) writes a watch: a series, the highest normal score and the
band normal values must stay in. The pipeline re-reads the watches once a second and, after each
batch, walks the points of watched series in time order: a normal point starts a streak
(`normal_since`, in data time) unless one is running, an abnormal point ends it. The executor, in
this process or another, only reads the row. Points of unwatched series cost one `np.isin`.
A watch names the series by its store id; a Kafka worker, whose registry ids are its own, passes
`local_ids` to translate them (aiops.shared_series.StoreSeries.local_ids; -1: not seen here).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from sqlalchemy import Connection, select, update

from aiops.store.schema import verification_watches
from detectors import MetricBatch

__all__ = ["WatchKeeper"]


class WatchKeeper:
    def __init__(self, local_ids: Callable[[Connection, np.ndarray], np.ndarray] | None = None) -> None:
        self._watches: list[dict[str, Any]] = []
        self._series = np.zeros(0, dtype=np.int64)
        self._local_ids = local_ids

    def refresh(self, conn: Connection) -> None:
        self._watches = [dict(r._mapping) for r in conn.execute(select(verification_watches))]
        store_ids = np.array([w["series_id"] for w in self._watches], dtype=np.int64)
        local = self._local_ids(conn, store_ids) if self._local_ids is not None and len(store_ids) else store_ids
        for w, sid in zip(self._watches, local.tolist()):
            w["local_id"] = sid
        self._series = np.array(sorted({sid for sid in local.tolist() if sid >= 0}), dtype=np.int64)

    def observe(self, conn_factory, batch: MetricBatch, values: np.ndarray, scores: np.ndarray, ready: np.ndarray) -> int:
        """Fold a scored batch into the watches; returns how many watches changed."""
        if not len(self._series) or not len(batch):
            return 0
        hit = np.flatnonzero(np.isin(batch.series_id, self._series))
        if not len(hit):
            return 0
        hit = hit[np.argsort(batch.ts[hit], kind="stable")]
        changed = []
        for w in self._watches:  # a loop over watches (a handful), then over their points
            points = hit[batch.series_id[hit] == w["local_id"]]
            if not len(points):
                continue
            for i in points:
                ts, value, score = float(batch.ts[i]), float(values[i]), float(scores[i])
                if w["last_ts"] is not None and ts <= w["last_ts"]:
                    continue  # replayed or late data does not count twice
                normal = bool(ready[i]) and score < w["max_score"] and (
                    w["lower"] is None or w["upper"] is None or w["lower"] <= value <= w["upper"])
                if not normal:
                    w["normal_since"] = None
                elif w["normal_since"] is None:
                    w["normal_since"] = ts
                w.update(last_ts=ts, last_value=value, last_score=score)
            changed.append(w)
        if changed:
            with conn_factory() as conn:
                for w in changed:
                    c = verification_watches.c
                    conn.execute(update(verification_watches)
                                 .where(c.execution_id == w["execution_id"], c.purpose == w["purpose"])
                                 .values(normal_since=w["normal_since"], last_ts=w["last_ts"],
                                         last_value=w["last_value"], last_score=w["last_score"]))
        return len(changed)
