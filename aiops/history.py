"""Downsampled history of the series that forecasts watch: bucket means on a fixed step, in a ring.

The service keeps no raw points; forecasting needs weeks of them. For each watched series the
keeper holds `buckets` sums and counts of `step_s`-wide time buckets in a ring (14 days of 5-minute
buckets: 4,032 pairs, 48 KiB a series), updated from every scored batch with `np.add.at` over the
points of watched series; a loop runs only over time steps (buckets to clear when series move on).
Points older than the ring are dropped; late points inside it still count. `matrix()` hands the
forecaster one aligned (series × buckets) array with NaN for empty buckets.

A Kafka worker keeps the history of the partitions it owns: `rows` cuts out the history of one
partition's series for its checkpoint, `load_rows` puts it back under the new owner's ids, and
`forget` drops the series of a partition it lost. Ring positions are absolute bucket numbers modulo
`buckets`, so rows move between processes as they are.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from detectors import MetricBatch
from ingest.registry import grow_id_map

__all__ = ["HistoryKeeper"]


class HistoryKeeper:
    def __init__(self, step_s: float, buckets: int) -> None:
        if step_s <= 0 or buckets < 2:
            raise ValueError(f"need step_s > 0 and at least 2 buckets, got {step_s} and {buckets}")
        self.step_s = float(step_s)
        self.n = int(buckets)
        self._lock = threading.Lock()  # the pipeline writes, the forecast thread reads
        self._slot_of = np.full(0, -1, dtype=np.int64)  # series id → slot, -1 when not watched
        self._series = np.zeros(0, dtype=np.int64)  # slot → series id
        self._sums = np.zeros((0, self.n))
        self._counts = np.zeros((0, self.n), dtype=np.int64)
        self._newest = np.zeros(0, dtype=np.int64)  # slot → newest bucket number seen (absolute), -1: none

    def __len__(self) -> int:
        return len(self._series)

    def watch(self, series_ids: np.ndarray | list[int]) -> None:
        """Start keeping history for these series (ones already watched are ignored)."""
        ids = np.unique(np.asarray(series_ids, dtype=np.int64))
        with self._lock:
            if len(ids):
                self._slot_of = grow_id_map(self._slot_of, int(ids.max()) + 1, -1)
            new = ids[self._slot_of[ids] < 0]
            if not len(new):
                return
            start = len(self._series)
            self._slot_of[new] = np.arange(start, start + len(new))
            self._series = np.concatenate([self._series, new])
            self._sums = np.vstack([self._sums, np.zeros((len(new), self.n))])
            self._counts = np.vstack([self._counts, np.zeros((len(new), self.n), dtype=np.int64)])
            self._newest = np.concatenate([self._newest, np.full(len(new), -1, dtype=np.int64)])

    def observe(self, batch: MetricBatch) -> int:
        """Fold the batch's points of watched series into their buckets; returns how many were kept."""
        if not len(self._series) or not len(batch):
            return 0
        sid = batch.series_id.astype(np.int64)
        known = sid < len(self._slot_of)
        keep = np.flatnonzero(known)
        keep = keep[self._slot_of[sid[keep]] >= 0]
        value = batch.value[keep]
        keep = keep[np.isfinite(value)]
        if not len(keep):
            return 0
        slots = self._slot_of[sid[keep]]
        bucket = np.floor(batch.ts[keep] / self.step_s).astype(np.int64)
        with self._lock:
            newest = self._newest.copy()
            np.maximum.at(newest, slots, bucket)
            self._clear_between(self._newest, newest)
            self._newest = newest
            fresh = bucket > newest[slots] - self.n  # inside the ring
            at = (slots[fresh], bucket[fresh] % self.n)
            np.add.at(self._sums, at, batch.value[keep][fresh])
            np.add.at(self._counts, at, 1)
        return int(fresh.sum())

    def _clear_between(self, old: np.ndarray, new: np.ndarray) -> None:
        """Empty the ring positions a slot moves past (from old+1 to new): they hold data a ring ago."""
        moved = np.flatnonzero(new > old)
        if not len(moved):
            return
        gap = np.minimum(new[moved] - np.maximum(old[moved], new[moved] - self.n), self.n)
        for k in range(1, int(gap.max()) + 1):  # a loop over buckets (time steps), not series
            rows = moved[gap >= k]
            pos = (np.maximum(old[rows], new[rows] - self.n) + k) % self.n
            self._sums[rows, pos] = 0.0
            self._counts[rows, pos] = 0

    def matrix(self, end_bucket: int | None = None) -> tuple[np.ndarray, np.ndarray, float]:
        """(series ids, values (series × buckets, oldest first, NaN where empty), timestamp of the last column).

        Columns are the `n` buckets ending at `end_bucket` (default: the newest bucket any series has);
        a bucket's timestamp is its start.
        """
        with self._lock:
            if not len(self._series):
                return np.zeros(0, dtype=np.int64), np.zeros((0, self.n)), 0.0
            end = int(self._newest.max()) if end_bucket is None else int(end_bucket)
            cols = (np.arange(end - self.n + 1, end + 1)) % self.n
            sums, counts = self._sums[:, cols], self._counts[:, cols]
            buckets = np.arange(end - self.n + 1, end + 1)[None, :]
            held = (buckets > self._newest[:, None] - self.n) & (buckets <= self._newest[:, None])  # in each ring now
            series = self._series.copy()
        with np.errstate(invalid="ignore", divide="ignore"):
            values = np.where((counts > 0) & held, sums / counts, np.nan)
        return series, values, end * self.step_s

    def forget(self, series_ids: np.ndarray | list[int]) -> int:
        """Stop keeping the history of these series (a revoked partition's); returns how many were dropped."""
        ids = np.asarray(series_ids, dtype=np.int64)
        with self._lock:
            ids = ids[ids < len(self._slot_of)]
            slots = self._slot_of[ids]
            slots = slots[slots >= 0]
            if not len(slots):
                return 0
            keep = np.ones(len(self._series), dtype=bool)
            keep[slots] = False
            self._slot_of[self._series[slots]] = -1
            self._series, self._newest = self._series[keep], self._newest[keep]
            self._sums, self._counts = self._sums[keep], self._counts[keep]
            self._slot_of[self._series] = np.arange(len(self._series))
        return len(slots)

    def rows(self, series_ids: np.ndarray) -> dict[str, Any]:
        """The history of those of `series_ids` that are watched, for a partition checkpoint.

        `series` holds positions into `series_ids` (the checkpoint names series by identity, in that order).
        """
        ids = np.asarray(series_ids, dtype=np.int64)
        with self._lock:
            slot = self._slots(ids)
            held = np.flatnonzero(slot >= 0)
            at = slot[held]
            return {"step_s": np.array(self.step_s), "n": np.array(self.n), "series": held,
                    "sums": self._sums[at], "counts": self._counts[at], "newest": self._newest[at]}

    def load_rows(self, rows: dict[str, Any], series_ids: np.ndarray) -> int:
        """Put back rows cut by `rows` under these ids (this process's ids of the same identities).

        Only series watched here are restored (a rule may no longer match); returns how many. Rows kept
        with another step or length are refused (ValueError).
        """
        if float(rows["step_s"]) != self.step_s or int(rows["n"]) != self.n:
            raise ValueError(f"history kept {float(rows['step_s'])} s × {int(rows['n'])} buckets, "
                             f"settings now want {self.step_s} s × {self.n}")
        ids = np.asarray(series_ids, dtype=np.int64)[np.asarray(rows["series"], dtype=np.int64)]
        with self._lock:
            slot = self._slots(ids)
            ok = np.flatnonzero(slot >= 0)
            at = slot[ok]
            self._sums[at] = np.asarray(rows["sums"], dtype=np.float64)[ok]
            self._counts[at] = np.asarray(rows["counts"], dtype=np.int64)[ok]
            self._newest[at] = np.asarray(rows["newest"], dtype=np.int64)[ok]
        return len(ok)

    def _slots(self, ids: np.ndarray) -> np.ndarray:
        """Per id, its history slot; -1 for a series not watched (call with the lock held)."""
        slot = np.full(len(ids), -1, dtype=np.int64)
        inside = ids < len(self._slot_of)
        slot[inside] = self._slot_of[ids[inside]]
        return slot

    def state_dict(self) -> dict[str, Any]:
        with self._lock:
            return {"step_s": np.array(self.step_s), "n": np.array(self.n), "series": self._series.copy(),
                    "sums": self._sums.copy(), "counts": self._counts.copy(), "newest": self._newest.copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore saved history; one saved with another step or length is refused (ValueError)."""
        if float(state["step_s"]) != self.step_s or int(state["n"]) != self.n:
            raise ValueError(f"history kept {float(state['step_s'])} s × {int(state['n'])} buckets, "
                             f"settings now want {self.step_s} s × {self.n}")
        series = np.asarray(state["series"], dtype=np.int64)
        with self._lock:
            self._slot_of = np.full(int(series.max()) + 1 if len(series) else 0, -1, dtype=np.int64)
            self._slot_of[series] = np.arange(len(series))
            self._series = series
            self._sums = np.asarray(state["sums"], dtype=np.float64)
            self._counts = np.asarray(state["counts"], dtype=np.int64)
            self._newest = np.asarray(state["newest"], dtype=np.int64)
