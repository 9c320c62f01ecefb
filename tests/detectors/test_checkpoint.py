"""Checkpoints: a tree of arrays and scalars round-trips; pickles and garbage are refused."""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest

from detectors import DefaultEnsemble, MetricBatch
from detectors.checkpoint import CheckpointError, pack, unpack


def test_tree_round_trip():
    state = {"version": 1, "a": np.arange(6.0).reshape(2, 3), "inner": {"ids": np.array([3, 4], dtype=np.int32), "name": "x", "none": None}, "list": [np.zeros(2), 7]}
    back = unpack(pack(state))
    np.testing.assert_array_equal(back["a"], state["a"])
    assert back["inner"]["ids"].dtype == np.int32 and back["inner"]["name"] == "x" and back["inner"]["none"] is None
    assert back["list"][1] == 7


def test_detector_state_through_a_checkpoint_scores_identically():
    rng = np.random.default_rng(0)
    batch = MetricBatch.from_arrays(rng.integers(0, 50, 3000), np.arange(3000) * 60.0, rng.normal(10, 1, 3000))
    first = DefaultEnsemble()
    first.update(batch)
    second = DefaultEnsemble()
    second.load_state_dict(unpack(pack(first.state_dict())))
    probe = MetricBatch.from_arrays(rng.integers(0, 50, 500), 180000 + np.arange(500) * 60.0, rng.normal(10, 1, 500))
    np.testing.assert_array_equal(first.update(probe).score, second.update(probe).score)


def test_garbage_and_pickles_are_refused():
    with pytest.raises(CheckpointError):
        unpack(b"not a checkpoint")
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(CheckpointError):
        unpack(buffer.getvalue())
    with pytest.raises(CheckpointError):
        unpack(pickle.dumps({"version": 1}))
    with pytest.raises(TypeError, match="cannot checkpoint"):
        pack({"x": object()})
