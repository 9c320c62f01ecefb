"""The fast path on synthetic series whose answer is known: seasonal shapes, trends, flat series,
honest interval coverage, ragged rows and too-short rows."""

from __future__ import annotations

import numpy as np
import pytest

from forecasting import forecast_many, seasons_for_step
from forecasting._candidates import candidate_names

HOUR = 3600.0


def _seasonal(rng, series: int, n: int, noise: float = 1.0, slope: float = 0.0) -> np.ndarray:
    t = np.arange(n)
    day = np.sin(2 * np.pi * t / 24)[None, :] * rng.uniform(5, 20, (series, 1))
    week = (np.where((t // 24) % 7 >= 5, -1.0, 0.0))[None, :] * rng.uniform(0, 5, (series, 1))
    return 100 + day + week + slope * t + noise * rng.standard_normal((series, n))


def test_seasons_follow_the_step():
    assert seasons_for_step(3600) == (24, 168)
    assert seasons_for_step(300) == (288, 2016)
    assert seasons_for_step(86400) == (1, None)
    assert seasons_for_step(7 * 60) == (1, None)  # a day is not a whole number of 7-minute steps


def test_a_seasonal_shape_is_forecast_within_the_noise():
    rng = np.random.default_rng(0)
    full = _seasonal(rng, 50, 24 * 21 + 48, noise=1.0)
    out = forecast_many(full[:, :-48], 48, step=HOUR)
    mae = np.abs(out.yhat - full[:, -48:]).mean()
    assert mae < 1.3  # the noise alone gives 0.8; the seasonal amplitude is up to 20
    assert out.ts.shape == (48,) and np.all(np.diff(out.ts) == HOUR)
    assert all(m for m in out.model) and np.all(np.isfinite(out.backtest_error))


def test_interval_coverage_on_simulated_noise_is_near_nominal():
    # forecast from ten end points spread over the week: coverage is a property of the method over
    # time, and one end point (say, a Monday after a weekend) is not the week
    rng = np.random.default_rng(1)
    full = _seasonal(rng, 40, 24 * 28 + 48, noise=2.0, slope=0.02)
    for level, low, high in ((0.8, 0.76, 0.84), (0.95, 0.92, 0.98)):
        inside = []
        for n in range(24 * 21, 24 * 28, 17):
            out = forecast_many(full[:, :n], 48, step=HOUR, level=level)
            actual = full[:, n : n + 48]
            inside.append(((out.lower <= actual) & (actual <= out.upper)).mean())
        assert low <= np.mean(inside) <= high, (level, np.mean(inside))


def test_a_trend_is_followed():
    rng = np.random.default_rng(2)
    full = _seasonal(rng, 20, 24 * 14 + 48, noise=0.5, slope=0.5)
    out = forecast_many(full[:, :-48], 48, step=HOUR)
    assert np.abs(out.yhat - full[:, -48:]).mean() < 2.0  # ignoring the trend would be off by ~12-36


def test_a_flat_series_gets_a_flat_forecast_and_a_narrow_interval():
    out = forecast_many(np.full((2, 24 * 10), 42.0), 24, step=HOUR)
    np.testing.assert_allclose(out.yhat, 42.0)
    assert np.all(out.upper - out.lower < 1e-9) and np.all(out.lower <= out.yhat)


def test_ragged_rows_short_rows_and_gaps():
    rng = np.random.default_rng(3)
    values = _seasonal(rng, 4, 24 * 10)
    values[1, : 24 * 8] = np.nan  # seen for two days only: no daily season yet
    values[2, :-5] = np.nan  # 5 points: too short
    values[3, 100:110] = np.nan  # a gap: carried forward
    out = forecast_many(values, 12, step=HOUR)
    assert out.status == ["ok", "ok", "too_short", "ok"]
    assert out.reason[2] == "too short: need 8 points, got 5"
    assert np.all(np.isnan(out.yhat[2])) and np.all(np.isfinite(out.yhat[[0, 1, 3]]))
    assert np.all(out.lower[[0, 1, 3]] <= out.yhat[[0, 1, 3]]) and np.all(out.yhat[[0, 1, 3]] <= out.upper[[0, 1, 3]])


def test_rows_are_independent_of_their_neighbours():
    rng = np.random.default_rng(4)
    values = _seasonal(rng, 6, 24 * 12)
    together = forecast_many(values, 24, step=HOUR)
    alone = forecast_many(values[3:4], 24, step=HOUR)
    np.testing.assert_allclose(together.yhat[3], alone.yhat[0])
    np.testing.assert_allclose(together.upper[3], alone.upper[0])


def test_a_named_candidate_and_an_unknown_one():
    rng = np.random.default_rng(5)
    values = _seasonal(rng, 2, 24 * 10)
    out = forecast_many(values, 30, step=HOUR, candidates=["snaive"])
    np.testing.assert_allclose(out.yhat[:, :24], values[:, -24:])
    assert out.model == ["snaive", "snaive"]
    with pytest.raises(ValueError, match="available"):
        forecast_many(values, 30, step=HOUR, candidates=["nope"])


@pytest.mark.parametrize("name", [None, *candidate_names(24, 168)])
def test_every_fast_forecaster_is_finite_ordered_deterministic_and_row_independent(name):
    rng = np.random.default_rng(6)
    values = _seasonal(rng, 5, 24 * 17, slope=0.05)  # drift14 backtests from 15 days + the horizon
    only = None if name is None else [name]
    a = forecast_many(values, 36, step=HOUR, candidates=only)
    b = forecast_many(values[::-1], 36, step=HOUR, candidates=only)
    for arr in (a.yhat, a.lower, a.upper, a.backtest_error):
        assert np.all(np.isfinite(arr))
    assert np.all(a.lower <= a.yhat) and np.all(a.yhat <= a.upper)
    np.testing.assert_array_equal(a.yhat, b.yhat[::-1])
    np.testing.assert_array_equal(a.upper, b.upper[::-1])


def test_a_named_forecaster_without_room_for_a_backtest_says_so():
    values = _seasonal(np.random.default_rng(7), 1, 24 * 16)
    out = forecast_many(values, 36, step=HOUR, candidates=["drift14"])
    assert out.status == ["too_short"] and "no backtest window" in out.reason[0]
    assert np.all(np.isnan(out.yhat))


def test_resets_cut_each_row_at_its_own_last_reset():
    t = np.arange(24 * 9, dtype=float)
    filling = 50 + 0.2 * t
    cleaned = filling.copy()
    cleaned[24 * 6 :] = 10 + 0.2 * (t[24 * 6 :] - 24 * 6)  # cleaned up three days ago
    out = forecast_many(np.stack([filling, cleaned]), 24, step=HOUR, resets=True)
    np.testing.assert_allclose(out.yhat[0], 50 + 0.2 * np.arange(24 * 9, 24 * 10), atol=0.5)
    np.testing.assert_allclose(out.yhat[1], 10 + 0.2 * np.arange(24 * 3, 24 * 4), atol=0.5)


@pytest.mark.parametrize("name", candidate_names(1, None))
def test_every_forecaster_without_a_season_is_finite_ordered_and_row_independent(name):
    rng = np.random.default_rng(8)
    values = _seasonal(rng, 5, 24 * 3, slope=0.05)  # three days: no season yet
    a = forecast_many(values, 24, step=HOUR, candidates=[name])
    b = forecast_many(values[::-1], 24, step=HOUR, candidates=[name])
    assert a.model == [name] * 5
    for arr in (a.yhat, a.lower, a.upper, a.backtest_error):
        assert np.all(np.isfinite(arr))
    assert np.all(a.lower <= a.yhat) and np.all(a.yhat <= a.upper)
    np.testing.assert_array_equal(a.yhat, b.yhat[::-1])
