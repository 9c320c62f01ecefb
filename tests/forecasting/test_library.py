"""The library forecasters (statsmodels Holt-Winters and ETS, Prophet) behind the same `forecast` call."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from forecasting import forecast, forecast_many
from forecasting.api import interval_scale
from forecasting.statistical import holt_winters_candidate

HOUR = 3600.0


def _daily(n: int, seed: int = 0) -> np.ndarray:
    t = np.arange(n)
    return 100 + 10 * np.sin(2 * np.pi * t / 24) + 0.05 * t + np.random.default_rng(seed).normal(0, 1, n)


@pytest.mark.parametrize("model", ["holt_winters", "ets"])
def test_statsmodels_forecasters_follow_a_daily_cycle(model):
    # 6-hourly samples (a season of 4 points): the optimisers take seconds on a 24-point season
    t = np.arange(4 * 30 + 8)
    full = 100 + 10 * np.sin(2 * np.pi * t / 4 + 0.5) + 0.05 * t + np.random.default_rng(0).normal(0, 1, len(t))
    fc = forecast(full[:-8], 8, ts=6 * HOUR * t[:-8], model=model)
    assert fc.ok and fc.model == model and np.isfinite(fc.backtest_error)
    assert np.abs(fc.yhat - full[-8:]).mean() < 2.0
    assert np.all(fc.lower <= fc.yhat) and np.all(fc.yhat <= fc.upper)


def test_statsmodels_holt_winters_as_a_backtested_candidate():
    X = np.stack([_daily(24 * 12, seed) for seed in range(2)])
    out = forecast_many(X, 24, step=HOUR, candidates=[], extra=holt_winters_candidate)
    assert out.model == ["sm_hw", "sm_hw"] and np.all(np.isfinite(out.yhat)) and np.all(out.lower < out.upper)


@pytest.mark.skipif(importlib.util.find_spec("prophet") is None, reason="prophet not installed")
def test_prophet_runs_offline_with_its_bundled_model():
    full = _daily(24 * 8 + 12)
    fc = forecast(full[:-12], 12, ts=1.7e9 + HOUR * np.arange(24 * 8), model="prophet")
    assert fc.ok and fc.model == "prophet"
    assert np.abs(fc.yhat - full[-12:]).mean() < 3.0
    assert np.all(fc.lower <= fc.upper)


def test_interval_scale_stretches_an_interval_to_what_it_covered():
    yhat = np.zeros(9)
    lower, upper = yhat - 1.0, yhat + 2.0
    actual = np.array([0.5, -0.5, 1.0, -3.0, 4.0, 0.0, 1.5, -1.5, 6.0])  # ratios .25 .5 .5 3 2 0 .75 1.5 3
    assert interval_scale(yhat, lower, upper, actual, 0.8) == 3.0  # rank ceil(10 * 0.8) = 8 of 9
    assert interval_scale(yhat, lower, upper, actual, 0.5) == 0.75
    assert interval_scale(yhat, yhat, yhat, actual, 0.8) == 1.0  # no width: nothing to scale
