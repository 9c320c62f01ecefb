"""EWMA z-score against a straightforward per-series Python implementation, and its behaviour."""

from __future__ import annotations

import math

import numpy as np

from detectors import EwmaZScore, MetricBatch, SeverityThreshold


def _reference(series_ids, values, alpha, warmup, floor_abs=1e-9, floor_rel=1e-3):
    """Per-series loop, written for clarity: the vectorized detector must agree with it."""
    state: dict[int, list[float]] = {}
    scores, ready = [], []
    for sid, x in zip(series_ids, values):
        mean, var, count = state.get(sid, [0.0, 0.0, 0])
        if count:
            std = max(math.sqrt(var), floor_abs, floor_rel * abs(mean))
            scores.append(min(1.0, -math.log10(math.erfc(abs(x - mean) / std / math.sqrt(2)) or 1e-300) / 10))
            delta = x - mean
            a = max(alpha, 1 / (count + 1))
            mean, var = mean + a * delta, (1 - a) * (var + a * delta * delta)
        else:
            scores.append(0.0)
            mean, var = x, 0.0
        ready.append(count >= warmup)
        state[sid] = [mean, var, count + 1]
    return np.array(scores), np.array(ready)


def test_matches_per_series_reference_on_interleaved_random_data():
    rng = np.random.default_rng(42)
    sid = rng.integers(0, 20, size=3000)
    values = rng.normal(100, 10, size=3000) + 50 * (rng.random(3000) < 0.01)
    det = EwmaZScore(alpha=0.05, warmup=10)
    got = []
    for chunk in np.array_split(np.arange(3000), 7):
        got.append(det.update(MetricBatch.from_arrays(sid[chunk], chunk.astype(float), values[chunk])))
    score = np.concatenate([g.score for g in got])
    ready = np.concatenate([g.ready for g in got])
    ref_score, ref_ready = _reference(sid.tolist(), values.tolist(), 0.05, 10)
    np.testing.assert_allclose(score, ref_score, atol=2e-4)  # erfc approximation error, on the log scale
    np.testing.assert_array_equal(ready, ref_ready)


def test_spike_scores_high_and_band_contains_normal_values():
    rng = np.random.default_rng(1)
    values = np.r_[rng.normal(50, 1, 200), 80.0]
    out = EwmaZScore().update(MetricBatch.from_arrays(np.zeros(201), np.arange(201.0), values))
    threshold = SeverityThreshold(warning=0.4, critical=0.6)
    severity = threshold.classify(out)
    assert severity[-1] == 2
    assert (severity[30:200] == 0).mean() > 0.99
    assert out.lower[-1] < out.expected[-1] < out.upper[-1] < 80.0
    assert severity[:30].max() == 0  # warm-up raises nothing


def test_state_grows_by_appending_and_checkpoint_holds_only_used_series():
    det = EwmaZScore()
    det.update(MetricBatch.from_arrays([3], [0.0], [1.0]))
    assert det.n_series == 4 and len(det.state_dict()["state"]) == 4
    det.update(MetricBatch.from_arrays([10], [0.0], [1.0]))
    assert det.n_series == 11
