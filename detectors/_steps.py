"""Split a batch of points for arbitrary series into time steps.

A batch may hold several points of one series. Processing it as a whole would let a series' later
point see state that its earlier point has not yet updated, so detectors walk the batch in *levels*:
level k holds the k-th point of every series present, and within a level each series occurs once,
which makes gather → compute → scatter on state arrays exact. Loops then run over levels (usually
one), never over series.
"""

from __future__ import annotations

import numpy as np

__all__ = ["time_steps", "grow"]


def time_steps(series_id: np.ndarray, scratch: np.ndarray) -> list[np.ndarray] | None:
    """Index arrays of the batch's levels, in order; None when every series occurs once.

    `scratch` is an int64 array at least `series_id.max() + 1` long that the caller owns and reuses;
    its contents are overwritten. Checking for repeats through it costs O(n) instead of a sort.
    """
    n = len(series_id)
    if n == 0:
        return None
    positions = np.arange(n)
    scratch[series_id] = positions
    if np.array_equal(scratch[series_id], positions):
        return None
    order = np.argsort(series_id, kind="stable")
    sorted_ids = series_id[order]
    starts = np.empty(n, dtype=bool)
    starts[0] = True
    np.not_equal(sorted_ids[1:], sorted_ids[:-1], out=starts[1:])
    group_start = np.maximum.accumulate(np.where(starts, positions, 0))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = positions - group_start
    by_rank = np.argsort(rank, kind="stable")
    counts = np.bincount(rank)
    return np.split(by_rank, np.cumsum(counts)[:-1])


def grow(array: np.ndarray, size: int, fill: float | int) -> np.ndarray:
    """`array` extended to at least `size` entries (doubling, so appends are amortized O(1))."""
    if len(array) >= size:
        return array
    new = np.full(max(size, 2 * len(array), 64), fill, dtype=array.dtype)
    new[: len(array)] = array
    return new
