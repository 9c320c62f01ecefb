"""One conformance suite for every detector: causality, batch ≡ stream, state round-trip, finite scores.

Add a detector factory to DETECTORS and it is held to all of these at once.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors import DefaultEnsemble, EwmaZScore, MetricBatch
from detectors.calibration import Calibrated
from detectors.changepoint import LevelShift
from detectors.robust import RobustMad
from detectors.seasonal import SeasonalBaseline

DETECTORS = {
    "ewma_zscore": lambda: EwmaZScore(alpha=0.1, warmup=5),
    "robust_mad": lambda: RobustMad(window=8, warmup=5),
    "level_shift": lambda: LevelShift(warmup=5),
    "seasonal": lambda: SeasonalBaseline(day_bins=4, warmup=5, warmup_s=0),
    "ensemble": lambda: DefaultEnsemble(day_bins=4, warmup=5),
    "calibrated_ewma": lambda: Calibrated(EwmaZScore(alpha=0.1, warmup=5)),
}

finite = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False)
streams = st.lists(st.tuples(st.integers(0, 4), finite), min_size=1, max_size=120)


def _batch(points) -> MetricBatch:
    sid = [p[0] for p in points]
    return MetricBatch.from_arrays(sid, np.arange(len(points), dtype=float), [p[1] for p in points])


def _split(batch: MetricBatch, cuts: list[int]) -> list[MetricBatch]:
    edges = [0, *sorted(set(c for c in cuts if 0 < c < len(batch))), len(batch)]
    return [batch.take(np.arange(a, b)) for a, b in zip(edges, edges[1:])]


def _run(detector, batches):
    outs = [detector.update(b) for b in batches]
    return {f: np.concatenate([getattr(o, f) for o in outs]) for f in ("score", "expected", "lower", "upper", "ready")}


def _same_state(a, b) -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            _same_state(a[key], b[key])
    else:
        assert np.array_equal(np.asarray(a), np.asarray(b), equal_nan=np.asarray(a).dtype.kind == "f")


def _same(a: dict, b: dict) -> None:
    for field in a:
        np.testing.assert_array_equal(a[field], b[field], err_msg=field)


@pytest.mark.parametrize("name", DETECTORS)
@settings(max_examples=60, deadline=None)
@given(points=streams, cuts=st.lists(st.integers(0, 120), max_size=6))
def test_scores_are_finite_and_in_unit_interval_and_batching_does_not_matter(name, points, cuts):
    batch = _batch(points)
    whole = _run(DETECTORS[name](), [batch])
    assert np.all(np.isfinite(whole["score"]))
    assert np.all((whole["score"] >= 0) & (whole["score"] <= 1))
    _same(whole, _run(DETECTORS[name](), _split(batch, cuts)))
    one_by_one = _run(DETECTORS[name](), _split(batch, list(range(len(batch)))))
    _same(whole, one_by_one)


@pytest.mark.parametrize("name", DETECTORS)
@settings(max_examples=60, deadline=None)
@given(points=streams, extra=streams)
def test_causality_appending_points_never_changes_earlier_scores(name, points, extra):
    short = _run(DETECTORS[name](), [_batch(points)])
    longer = _run(DETECTORS[name](), [_batch(points + extra)])
    n = len(points)
    _same(short, {f: v[:n] for f, v in longer.items()})


@pytest.mark.parametrize("name", DETECTORS)
@settings(max_examples=40, deadline=None)
@given(points=streams, cut=st.integers(0, 120))
def test_state_round_trip_gives_identical_scores(name, points, cut):
    batch = _batch(points)
    first, second = _split(batch, [cut]) if 0 < cut < len(batch) else (batch, MetricBatch.empty())
    original = DETECTORS[name]()
    original.update(first)
    restored = DETECTORS[name]()
    restored.load_state_dict(original.state_dict())
    _same_state(original.state_dict(), restored.state_dict())
    _same(_run(original, [second]), _run(restored, [second]))


@pytest.mark.parametrize("name", DETECTORS)
def test_series_appearing_mid_stream_and_nan_and_constant_series(name):
    det = DETECTORS[name]()
    det.update(MetricBatch.from_arrays([0] * 50, np.arange(50.0), np.full(50, 5.0)))  # constant
    out = det.update(MetricBatch.from_arrays([0, 7, 0], [50.0, 50.0, 51.0], [5.0, 3.0, np.nan]))
    assert np.all(np.isfinite(out.score)) and np.all((out.score >= 0) & (out.score <= 1))
    assert out.ready.tolist() == [True, False, False]  # new series 7 warms up; NaN decides nothing
    again = det.update(MetricBatch.from_arrays([0], [52.0], [5.0]))
    assert again.score[0] < 0.5  # the NaN left the learned state alone


DIRECTED = {
    "ewma_zscore": lambda d: EwmaZScore(alpha=0.1, warmup=5, direction=d),
    "robust_mad": lambda d: RobustMad(window=8, warmup=5, direction=d),
    "level_shift": lambda d: LevelShift(warmup=5, direction=d),
    "seasonal": lambda d: SeasonalBaseline(day_bins=4, warmup=5, warmup_s=0, direction=d),
    "ensemble": lambda d: DefaultEnsemble(day_bins=4, warmup=5, range_after_s=0, direction=d),
}


@pytest.mark.parametrize("name", DIRECTED)
def test_direction_up_scores_only_rises_and_down_only_drops(name):
    rng = np.random.default_rng(3)
    n = 400
    values = rng.normal(50, 1, n)
    values[300:310], values[350:360] = 90.0, 10.0  # a jump up for ten points, later one down, far outside
    batch = MetricBatch.from_arrays(np.zeros(n), np.arange(n, dtype=float) * 60, values)
    rise, drop = slice(300, 310), slice(350, 360)
    both, up, down = (DIRECTED[name](d).update(batch).score for d in ("both", "up", "down"))
    assert up[rise].max() > 0.3 and up[drop].max() < 0.1, (up[rise].max(), up[drop].max())  # (how high: each detector's own)
    assert down[drop].max() > 0.3 and down[rise].max() < 0.1, (down[rise].max(), down[drop].max())
    assert both[rise].max() > 0.3 and both[drop].max() > 0.3
