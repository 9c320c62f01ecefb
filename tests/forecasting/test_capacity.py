"""One series through `forecast` and `time_to_threshold`: a disk filling at a known rate, a seasonal
series that never crosses, a reset, counters, too-short and flat series."""

from __future__ import annotations

import numpy as np
import pytest

from forecasting import ModelNotFound, crossing_times, forecast, forecast_many, last_reset, time_to_threshold

HOUR = 3600.0
T0 = 1.7e9


def _hours(n: int) -> np.ndarray:
    return T0 + HOUR * np.arange(n)


def test_a_linear_fill_crosses_the_threshold_at_the_known_time():
    rng = np.random.default_rng(0)
    n, rate = 24 * 10, 0.1  # percent per hour, from 40%
    used = 40 + rate * np.arange(n) + rng.normal(0, 0.2, n)
    fc = forecast(used, 24 * 14, ts=_hours(n))
    crossing = time_to_threshold(fc, 90.0)
    expected = T0 + HOUR * (90 - 40) / rate  # 500 h after the start: 260 h after the last point
    assert crossing is not None and crossing.direction == "up"
    assert abs(crossing.likely - expected) < 12 * HOUR
    assert crossing.earliest <= crossing.likely <= crossing.latest
    assert crossing.earliest > T0 + HOUR * (n - 1)  # in the future


def test_a_downward_threshold_and_a_per_step_limit():
    n = 24 * 8
    free = 500 - 2.0 * np.arange(n) + np.random.default_rng(1).normal(0, 1, n)
    fc = forecast(free, 48, ts=_hours(n))
    down = time_to_threshold(fc, 80.0, direction="down")
    assert down is not None and abs(down.likely - (T0 + HOUR * 210)) < 3 * HOUR
    assert down.earliest <= down.likely
    assert time_to_threshold(fc, 80.0, direction="up") is not None  # already above: crosses at once
    falling_limit = np.linspace(80.0, 0.0, 48)  # a floor lowered faster than the space shrinks
    assert time_to_threshold(fc, falling_limit, direction="down") is None


def test_a_seasonal_series_without_trend_never_crosses():
    rng = np.random.default_rng(2)
    n = 24 * 21
    t = np.arange(n)
    cpu = 50 + 20 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 2, n)
    fc = forecast(cpu, 24 * 7, ts=_hours(n))
    assert time_to_threshold(fc, 90.0) is None
    assert np.all(fc.upper < 90) and 25 < fc.yhat.min() and fc.yhat.max() < 75


def test_after_a_reset_the_forecast_starts_from_the_new_level():
    rng = np.random.default_rng(3)
    before = 50 + 0.2 * np.arange(24 * 6)  # filled to ~79% ...
    after = 10 + 0.2 * np.arange(24 * 3)  # ... cleaned up to 10%, filling again
    disk = np.concatenate([before, after]) + rng.normal(0, 0.1, 24 * 9)
    assert last_reset(disk, 24) == 24 * 6
    fc = forecast(disk, 24 * 5, ts=_hours(24 * 9))
    assert fc.ok and fc.history_start == T0 + HOUR * 24 * 6
    np.testing.assert_allclose(fc.yhat[:24], 10 + 0.2 * np.arange(24 * 3, 24 * 4), atol=1.0)
    crossing = time_to_threshold(fc, 30.0)
    assert crossing is not None and abs(crossing.likely - (T0 + HOUR * (24 * 6 + 100))) < 3 * HOUR
    # a daily dip that comes back is not a reset, nor an outage after which the level returned
    dip = 50 + 20 * (np.arange(24 * 5) % 24 < 8)
    assert last_reset(dip.astype(float), 24) is None
    outage = np.full(24 * 8, 80.0)
    outage[24 * 3 : 24 * 5] = 20.0
    assert last_reset(outage, 24) is None


def test_a_counter_is_forecast_as_a_rate_through_its_resets():
    n = 24 * 6
    rate = 5.0  # per second
    counter = np.cumsum(np.full(n, rate * HOUR))
    counter[100:] -= counter[99]  # the process restarted: the counter starts again from zero
    fc = forecast(counter, 12, ts=_hours(n), kind="counter")
    assert fc.ok
    np.testing.assert_allclose(fc.yhat, rate, rtol=1e-6)


def test_too_short_is_a_result_that_says_what_it_needs():
    fc = forecast(np.array([1.0, 2.0, 3.0]), 5, ts=_hours(3))
    assert not fc.ok and fc.status == "too_short"
    assert fc.reason == "too short: need 8 points, got 3"
    assert len(fc.ts) == 5 and np.all(np.isnan(fc.yhat))
    assert time_to_threshold(fc, 2.0) is None


def test_a_flat_series_has_a_narrow_interval_and_no_crossing():
    fc = forecast(np.full(24 * 5, 7.0), 48, ts=_hours(24 * 5))
    np.testing.assert_allclose(fc.yhat, 7.0)
    assert np.all(fc.upper - fc.lower < 1e-9)
    assert time_to_threshold(fc, 7.5) is None and time_to_threshold(fc, 6.5, "down") is None


def test_short_history_without_a_season_still_forecasts_a_trend():
    fc = forecast(np.arange(12, dtype=float) * 3.0, 6, ts=_hours(12))
    assert fc.ok
    np.testing.assert_allclose(fc.yhat, 33.0 + 3.0 * np.arange(1, 7), atol=1e-6)


def test_unknown_model_names_the_known_ones():
    with pytest.raises(ModelNotFound, match="available: auto, auto_ets, snaive"):
        forecast(np.ones(50), 5, model="arima")


def test_crossing_times_of_a_batch_match_the_single_series_answer():
    n = 24 * 8
    t = np.arange(n, dtype=float)
    rng = np.random.default_rng(4)
    values = np.stack([40 + 0.1 * t, 60 + 0.3 * t, 50 + 5 * np.sin(2 * np.pi * t / 24)]) + rng.normal(0, 0.2, (3, n))
    batch = forecast_many(values, 24 * 7, ts=_hours(n))
    limits = np.array([[90.0], [150.0], [90.0]])  # one threshold per series
    earliest, likely, latest = crossing_times(batch, limits)
    for i in range(3):
        single = time_to_threshold(batch.row(i), limits[i, 0])
        if single is None:
            assert np.isnan(earliest[i])
        else:
            assert earliest[i] == single.earliest and likely[i] == single.likely
    assert abs(likely[1] - (T0 + HOUR * (150 - 60) / 0.3)) < 6 * HOUR  # 300 h from the start: 108 h ahead
    assert np.isnan(earliest[2])  # a daily cycle without trend never reaches 90
