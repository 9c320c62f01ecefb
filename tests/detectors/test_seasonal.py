"""The seasonal baseline sees what a level-only detector cannot, and STL seeding makes it ready at once."""

from __future__ import annotations

import numpy as np

from detectors import EwmaZScore, MetricBatch
from detectors.seasonal import SeasonalBaseline

STEP = 300.0
START = 1_800_000_000.0


def _daily_series(days: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    ts = START + np.arange(0, days * 86400, STEP)
    hour = (ts % 86400) / 3600
    weekend = (((ts // 86400) + 3) % 7) >= 5
    return ts, 50 + 30 * np.sin(2 * np.pi * (hour - 9) / 24) + 5 * weekend + rng.normal(0, 2, len(ts))


def _run(detector, ts, x):
    out = detector.update(MetricBatch.from_arrays(np.zeros(len(ts)), ts, x))
    return np.where(out.ready, out.score, 0.0), out


def test_off_hours_spike_is_seen_by_the_seasonal_baseline_only():
    ts, x = _daily_series(21)
    x[-200] += 15  # ordinary at the daily peak, far out at this hour
    seasonal, out = _run(SeasonalBaseline(), ts, x)
    level, _ = _run(EwmaZScore(), ts, x)
    assert seasonal[-200] > 0.6 > level[-200]
    last_two_weeks = np.r_[seasonal[-4032:-200], seasonal[-199:]]
    assert (last_two_weeks >= 0.4).sum() <= 1
    assert np.std((x - out.expected)[-4032:]) < 3.5  # it follows the cycle: residuals near the noise (2)


def test_warmup_lasts_a_day_of_data():
    ts, x = _daily_series(2)
    _, out = _run(SeasonalBaseline(), ts, x)
    first_ready = int(np.argmax(out.ready))
    assert ts[first_ready] - ts[0] >= 86400 and out.ready[first_ready:].all()


def test_stl_seeding_from_history_makes_a_series_ready_at_once():
    ts, x = _daily_series(21)
    x[-200] += 15
    det = SeasonalBaseline()
    assert det.seed(0, ts[:4032], x[:4032])
    scores, out = _run(det, ts[4032:], x[4032:])
    assert out.ready.all()
    assert scores[-200] > 0.6
    assert (scores >= 0.4).sum() <= 2


def test_seeding_refuses_too_little_history():
    ts, x = _daily_series(1)
    assert not SeasonalBaseline().seed(0, ts, x)
