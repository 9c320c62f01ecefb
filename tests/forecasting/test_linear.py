"""predict_linear: a line through the recent window, many series at once, with honest intervals."""

from __future__ import annotations

import numpy as np

from forecasting import crossing_times
from forecasting.linear import predict_linear


def test_a_linear_fill_crosses_at_the_known_time_and_a_flat_series_never():
    t = np.arange(120) * 60.0  # two hours a minute apart
    rng = np.random.default_rng(0)
    X = np.vstack([50 + 0.005 * t + rng.normal(0, 0.2, len(t)),  # +0.3 a minute: 100 at t = 10000 s
                   np.full(len(t), 42.0) + rng.normal(0, 0.2, len(t))])
    batch = predict_linear(X, 120, step=60, last_ts=t[-1], window=60)
    earliest, likely, latest = crossing_times(batch, 100.0, "up")
    assert abs(likely[0] - 10000) < 120 and earliest[0] <= likely[0] <= latest[0]
    assert np.isnan(likely[1]) and batch.status == ["ok", "ok"] and batch.model == ["linear", "linear"]


def test_intervals_cover_about_their_level_on_noise():
    rng = np.random.default_rng(1)
    X = rng.normal(0, 1, (2000, 61))
    batch = predict_linear(X[:, :60], 1, step=1, last_ts=59, window=60, level=0.8)
    inside = (X[:, 60] >= batch.lower[:, 0]) & (X[:, 60] <= batch.upper[:, 0])
    assert 0.76 < inside.mean() < 0.84


def test_a_cleaned_disk_is_judged_by_how_it_fills_again_and_short_rows_say_so():
    before = 60 + 0.5 * np.arange(40)  # filling fast…
    after = 20 + 0.01 * np.arange(20)  # …cleaned up, now filling slowly
    X = np.vstack([np.r_[before, after], np.r_[np.full(58, np.nan), 1.0, 2.0]])
    fit = predict_linear(X, 10, step=60, last_ts=0, window=60, resets=True)
    assert abs(fit.yhat[0, 0] - (20 + 0.01 * 20)) < 0.05  # the slope after the reset, not the old one
    blind = predict_linear(X, 10, step=60, last_ts=0, window=60, resets=False)
    assert abs(blind.yhat[0, 0] - 20.2) > 1  # the drop tilts a line fit across it
    assert fit.status[1] == "too_short" and "need 4 points" in fit.reason[1] and np.isnan(fit.yhat[1]).all()
