"""Counters become per-second rates; resets and repeated timestamps are handled."""

from __future__ import annotations

import numpy as np

from detectors import MetricBatch
from detectors.counters import CounterRate


def test_rates_resets_first_sample_and_stale_points():
    rate = CounterRate()
    out = rate.apply(MetricBatch.from_arrays([0, 0, 0, 0, 1, 0, 0], [0, 10, 20, 30, 0, 30, 40], [100, 150, 200, 20, 5, 99, 30]))
    np.testing.assert_array_equal(
        out.value, [np.nan, 5.0, 5.0, 2.0, np.nan, np.nan, 1.0]
    )  # t=30 reset (20 since restart over 10 s); a repeated t=30 has no rate and changes nothing


def test_state_round_trip():
    a = CounterRate()
    a.apply(MetricBatch.from_arrays([0, 1], [0, 0], [10, 20]))
    b = CounterRate()
    b.load_state_dict(a.state_dict())
    probe = MetricBatch.from_arrays([0, 1], [10, 10], [30, 40])
    np.testing.assert_array_equal(a.apply(probe).value, b.apply(probe).value)
