"""The entity detector: multivariate oddities, attributions that point at the odd metric, state round trip."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.entity import EntityDetector


def _fleet(n: int, seed: int = 0) -> np.ndarray:
    """cpu follows request rate; latency grows slowly with it."""
    rng = np.random.default_rng(seed)
    req = rng.uniform(100, 1000, n)
    return np.c_[req * 0.05 + rng.normal(0, 2, n), req, 0.1 + req * 1e-4 + rng.normal(0, 0.01, n)]


@pytest.fixture(scope="module")
def fitted() -> EntityDetector:
    det = EntityDetector(n_features=3, history=2048, seed=1)
    det.observe(_fleet(2000))
    assert det.refit()
    return det


def test_not_ready_until_enough_rows():
    det = EntityDetector(n_features=3, min_rows=64)
    det.observe(_fleet(10))
    assert not det.refit() and not det.ready
    scores, attributions = det.score(_fleet(2))
    assert scores.tolist() == [0.0, 0.0] and attributions.shape == (2, 3)


def test_a_relationship_broken_scores_high_and_normal_rows_do_not(fitted):
    normal = _fleet(200, seed=5)
    scores, _ = fitted.score(normal)
    odd, _ = fitted.score(np.array([[50.0, 100.0, 0.11]]))  # CPU of a busy host, traffic of an idle one
    assert odd[0] > 0.4
    assert (scores >= 0.4).mean() < 0.02


def test_attributions_sum_to_one_and_name_the_odd_metric(fitted):
    _, attributions = fitted.score(np.array([[25.0, 500.0, 0.9], [25.0, 500.0, 0.15]]))
    np.testing.assert_allclose(attributions.sum(axis=1), 1.0)
    assert attributions[0].argmax() == 2  # latency
    assert attributions[0, 2] > attributions[1, 2]


def test_rows_with_missing_metrics_are_skipped_and_scored_zero(fitted):
    scores, attributions = fitted.score(np.array([[np.nan, 500.0, 0.15]]))
    assert scores.tolist() == [0.0] and attributions.sum() == 0.0


def test_buffer_is_bounded_and_state_round_trip_is_exact(fitted):
    det = EntityDetector(n_features=3, history=128, min_rows=32, seed=3)
    det.observe(_fleet(500))
    assert len(det.training_rows()) == 128
    np.testing.assert_array_equal(det.training_rows(), _fleet(500)[-128:])
    det.refit()
    restored = EntityDetector(n_features=3, history=128, min_rows=32)
    restored.load_state_dict(det.state_dict())
    probe = _fleet(50, seed=9)
    np.testing.assert_array_equal(det.score(probe)[0], restored.score(probe)[0])
