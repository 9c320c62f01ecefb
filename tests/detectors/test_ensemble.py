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
