"""Calibration judges a series against its own score history."""

from __future__ import annotations

import numpy as np

from detectors import EwmaZScore, MetricBatch
from detectors.calibration import Calibrated


def test_heavy_tailed_noise_stops_alarming_while_a_sustained_change_still_does():
    rng = np.random.default_rng(0)
    n = 4000
    noisy = rng.standard_t(2, n)  # heavy tails: plain z-scores alarm often
    shifted = rng.normal(0, 1, n)
    shifted[3500:] += 4  # a sustained change
    batch = MetricBatch.from_arrays(np.r_[np.zeros(n), np.ones(n)], np.r_[np.arange(n), np.arange(n)] * 60.0,
                                    np.r_[noisy, shifted])
    plain = EwmaZScore().update(batch).score
    calibrated = Calibrated(EwmaZScore()).update(batch)
    late_noise = slice(2000, n)
    assert (plain[late_noise] >= 0.6).sum() > 3 * max(1, (calibrated.score[late_noise] >= 0.6).sum())
    assert calibrated.score[n + 3500 : n + 3520].max() >= 0.6
    assert set(calibrated.components) == {"ewma_zscore"}
