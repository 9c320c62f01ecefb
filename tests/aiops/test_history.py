"""Downsampled history for forecasts: bucket means, a ring that forgets what is older, aligned matrices."""

from __future__ import annotations

import numpy as np
import pytest

from aiops.history import HistoryKeeper
from detectors import MetricBatch


def _batch(sid, ts, value) -> MetricBatch:
    return MetricBatch.from_arrays(np.asarray(sid), np.asarray(ts, float), np.asarray(value, float))


def test_bucket_means_for_watched_series_only_in_any_order_and_batching():
    keeper = HistoryKeeper(step_s=60, buckets=5)
    keeper.watch([2, 7])
    keeper.observe(_batch([2, 7, 3, 2], [0, 10, 10, 30], [1.0, 5.0, 99.0, 3.0]))
    keeper.observe(_batch([7, 2, 2], [70, 65, 200], [6.0, 10.0, 20.0]))
    series, values, last = keeper.matrix()
    assert list(series) == [2, 7] and last == 180.0  # the newest bucket starts at 180 s
    np.testing.assert_array_equal(values[0], [np.nan, 2.0, 10.0, np.nan, 20.0])  # buckets -1 … 3 (a ring of 5)
    np.testing.assert_array_equal(values[1], [np.nan, 5.0, 6.0, np.nan, np.nan])  # nothing newer than bucket 1


def test_the_ring_forgets_buckets_older_than_its_length_and_drops_too_old_points():
    keeper = HistoryKeeper(step_s=10, buckets=4)
    keeper.watch([0])
    keeper.observe(_batch([0] * 4, [0, 10, 20, 30], [1, 2, 3, 4]))
    keeper.observe(_batch([0, 0], [60, 5], [7, 100]))  # 5 s is older than the ring now holds: dropped
    _, values, last = keeper.matrix()
    assert last == 60.0
    np.testing.assert_array_equal(values[0], [4.0, np.nan, np.nan, 7.0])  # buckets 3..6
    keeper.observe(_batch([0], [1000], [9]))  # a long gap empties the whole ring
    np.testing.assert_array_equal(keeper.matrix()[1][0], [np.nan, np.nan, np.nan, 9.0])


def test_state_round_trip_and_a_changed_step_is_refused():
    keeper = HistoryKeeper(step_s=60, buckets=8)
    keeper.watch([1, 4])
    keeper.observe(_batch([1, 4, 1], [0, 60, 120], [1.0, 2.0, 3.0]))
    again = HistoryKeeper(step_s=60, buckets=8)
    again.load_state_dict(keeper.state_dict())
    for a, b in zip(keeper.matrix(), again.matrix()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="settings now want 30.0 s"):
        HistoryKeeper(step_s=30, buckets=8).load_state_dict(keeper.state_dict())


def test_rows_of_some_series_move_to_another_keeper_under_its_own_ids():
    keeper = HistoryKeeper(step_s=60, buckets=6)
    keeper.watch([0, 1, 2, 3])
    rng = np.random.default_rng(0)
    for t in range(0, 600, 20):  # ten buckets: the ring wrapped, late points inside it too
        keeper.observe(_batch([0, 1, 2, 3, 1], [t] * 4 + [t - 200], rng.normal(50, 5, 5)))
    rows = keeper.rows(np.array([3, 9, 1]))  # a partition's series in its checkpoint's order; 9 is not watched
    assert rows["series"].tolist() == [0, 2]

    other = HistoryKeeper(step_s=60, buckets=6)
    other.watch([5, 7, 8])  # 7 and 8 are 3 and 1 there; 5 is another series with history of its own
    other.observe(_batch([5], [900], [1.0]))
    assert other.load_rows(rows, np.array([7, 40, 8])) == 2
    series, values, last = keeper.matrix()
    moved_series, moved, moved_last = other.matrix(end_bucket=int(last // 60))
    assert moved_last == last
    np.testing.assert_array_equal(moved[list(moved_series).index(7)], values[list(series).index(3)])
    np.testing.assert_array_equal(moved[list(moved_series).index(8)], values[list(series).index(1)])
    assert other.load_rows(keeper.rows(np.array([2])), np.array([40])) == 0  # not watched there: ignored
    with pytest.raises(ValueError, match="settings now want 30.0 s"):
        HistoryKeeper(step_s=30, buckets=6).load_rows(rows, np.array([7, 40, 8]))


def test_forget_drops_series_and_keeps_the_others_history():
    keeper = HistoryKeeper(step_s=10, buckets=4)
    keeper.watch([0, 1, 2])
    keeper.observe(_batch([0, 1, 2, 0, 1, 2], [0, 0, 0, 10, 10, 10], [1, 2, 3, 4, 5, 6]))
    before = keeper.matrix()[1]
    assert keeper.forget([1, 8]) == 1 and keeper.forget([1]) == 0
    series, values, _ = keeper.matrix()
    assert series.tolist() == [0, 2]
    np.testing.assert_array_equal(values, before[[0, 2]])
    keeper.watch([1])  # taken over again later: from nothing, unless a checkpoint brings its rows
    keeper.observe(_batch([1], [10], [9.0]))
    np.testing.assert_array_equal(keeper.matrix()[1][2], [np.nan, np.nan, np.nan, 9.0])
