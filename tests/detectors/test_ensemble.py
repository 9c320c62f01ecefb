"""The default ensemble: behaviours the NAB figures rest on, each on a small seeded series."""

from __future__ import annotations

import numpy as np

from detectors import DefaultEnsemble, MetricBatch


def _scores(values, step_s=300.0, **params):
    n = len(values)
    return DefaultEnsemble(**params).update(MetricBatch.from_arrays(np.zeros(n), np.arange(n) * step_s, values)).score


def test_a_shift_alarms_at_its_start_and_not_again_on_every_point_of_the_climb():
    rng = np.random.default_rng(0)
    x = 10 + rng.normal(0, 1, 600)
    x[400:] += 6
    gapped = _scores(x)[400:450]
    assert gapped[:3].max() >= 0.6  # the start is reported
    assert (gapped >= 0.5).sum() <= 2
    assert (_scores(x, onset_gap=0.0)[400:450] >= 0.5).sum() >= 4  # without the gap, each new peak alarms


def test_a_series_that_starts_to_oscillate_within_its_range_is_new_behaviour_but_old_spikes_are_not():
    rng = np.random.default_rng(1)
    x = 50 + rng.normal(0, 0.5, 1200)
    x[:900:97] += 30  # a one-point spike every 97 points: two large moves, never three in a row
    x[900:] += np.where(np.arange(300) % 2 == 0, 2.5, -2.5)  # then a zigzag, far inside the range
    out = DefaultEnsemble().update(MetricBatch.from_arrays(np.zeros(1200), np.arange(1200) * 300.0, x))
    assert out.score[300:900].max() < 0.5
    assert out.components["roughness"][900:910].max() == 0.9 and out.score[900:910].max() >= 0.9
    assert out.components["range"][900:].max() == 0.0  # the range member cannot see it
    assert out.components["level"][900:960].max() < 0.5  # nor can the residuals, with spikes in their scale
