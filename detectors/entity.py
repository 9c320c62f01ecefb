"""Multivariate entity detector: an IsolationForest over one feature vector per entity.

Use it when trouble shows in how an entity's metrics relate, not in any one of them: a host whose
CPU is high *while* its request rate is low, a service whose latency and error ratio move together.
Each row is one entity (a host, a pod) at one time; each column one of its metrics.

The forest (scikit-learn) is refit from the recent rows kept in a bounded buffer, on a schedule the
caller owns: `refit` is meant to run off the hot path, `score` is cheap. Scores go on the common scale
by comparing an entity's isolation score with the distribution of isolation scores over the training
rows (Gaussian upper tail). Isolation scores of normal rows have a longer tail than a Gaussian, so
entity rules alert from 0.5 by default rather than the series default of 0.4. Every score comes with per-feature attributions: each split on a row's
path through a tree cuts the training rows around it from n_parent to n_child, log2(n_parent/n_child)
bits of isolation, credited to the split's feature; shares of the total over all trees say *which*
metrics made the host odd (a balanced split on a normal row gives each feature about the same).

State is the training buffer and the seed, saved as arrays; loading refits, which is deterministic.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from detectors._numeric import upper_tail_surprise

__all__ = ["EntityDetector"]

_STATE_VERSION = 1


class EntityDetector:
    """IsolationForest over rows of `n_features` metrics per entity.

    history: rows kept for training (a ring buffer; bounded memory).
    min_rows: rows needed before the first fit; until then `score` returns zeros and `ready` False.
    n_estimators, max_samples: the forest's size (scikit-learn's parameters).
    seed: the forest's randomness; the same rows and seed give the same forest.
    """

    name = "entity_isolation_forest"

    def __init__(
        self,
        n_features: int,
        history: int = 2048,
        min_rows: int = 64,
        n_estimators: int = 100,
        max_samples: int = 256,
        seed: int = 0,
    ) -> None:
        if n_features < 1 or history < min_rows or min_rows < 8:
            raise ValueError(f"need n_features >= 1 and history >= min_rows >= 8, got {n_features}, {history}, {min_rows}")
        self.n_features = n_features
        self.history = history
        self.min_rows = min_rows
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.seed = seed
        self._rows = np.empty((history, n_features))
        self._count = 0  # rows ever observed; the buffer holds the last min(count, history)
        self._model: tuple | None = None  # (forest, mean and std of training isolation scores), swapped whole

    @property
    def ready(self) -> bool:
        return self._model is not None

    def observe(self, rows: np.ndarray) -> None:
        """Add complete rows (entities × features) to the training buffer; rows with NaN are skipped."""
        rows = np.asarray(rows, dtype=float).reshape(-1, self.n_features)
        rows = rows[np.isfinite(rows).all(axis=1)]
        for start in range(0, len(rows), self.history):  # a loop over buffer-sized chunks, not rows
            chunk = rows[start : start + self.history]
            at = (self._count + np.arange(len(chunk))) % self.history
            self._rows[at] = chunk
            self._count += len(chunk)

    def training_rows(self) -> np.ndarray:
        """The buffered rows, oldest first."""
        if self._count <= self.history:
            return self._rows[: self._count].copy()
        return np.roll(self._rows, -(self._count % self.history), axis=0)

    def refit(self) -> bool:
        """Fit the forest on the buffer (seconds for big buffers: run it off the hot path)."""
        from sklearn.ensemble import IsolationForest

        rows = self.training_rows()
        if len(rows) < self.min_rows:
            return False
        forest = IsolationForest(
            n_estimators=self.n_estimators, max_samples=min(self.max_samples, len(rows)), random_state=self.seed
        ).fit(rows)
        train = -forest.score_samples(rows)
        self._model = (forest, float(train.mean()), float(max(train.std(), 1e-6)))
        return True

    def score(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scores on the common scale and attributions (rows × features, each row summing to 1)."""
        rows = np.asarray(rows, dtype=float).reshape(-1, self.n_features)
        n = len(rows)
        model = self._model
        if model is None or n == 0:
            return np.zeros(n), np.zeros((n, self.n_features))
        forest, train_mean, train_std = model
        complete = np.isfinite(rows).all(axis=1)
        scores = np.zeros(n)
        attributions = np.zeros((n, self.n_features))
        if complete.any():
            x = rows[complete]
            z = (-forest.score_samples(x) - train_mean) / train_std
            scores[complete] = [upper_tail_surprise(v) for v in z]  # per entity row, not per point
            attributions[complete] = self._attributions(forest, x)
        return scores, attributions

    def _attributions(self, forest, x: np.ndarray) -> np.ndarray:
        """Bits of isolation per feature along each tree's path, as shares of the total."""
        credit = np.zeros((len(x), self.n_features))
        rows = np.arange(len(x))
        for tree, features in zip(forest.estimators_, forest.estimators_features_):
            t = tree.tree_
            node = np.zeros(len(x), dtype=np.int64)
            while True:  # a loop over depth levels, all rows at once
                inner = np.flatnonzero(t.children_left[node] >= 0)
                if len(inner) == 0:
                    break
                at = node[inner]
                original = features[t.feature[at]]
                go_left = x[inner, original] <= t.threshold[at]
                child = np.where(go_left, t.children_left[at], t.children_right[at])
                bits = np.log2(t.n_node_samples[at] / np.maximum(t.n_node_samples[child], 1))
                np.add.at(credit, (rows[inner], original), bits)
                node[inner] = child
        total = credit.sum(axis=1, keepdims=True)
        return np.divide(credit, total, out=np.zeros_like(credit), where=total > 0)

    def state_dict(self) -> dict[str, Any]:
        return {"version": _STATE_VERSION, "rows": self.training_rows(), "seed": self.seed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("version") != _STATE_VERSION:
            raise ValueError(f"unsupported {self.name} state version {state.get('version')!r}")
        rows = np.asarray(state["rows"], dtype=float)
        self.seed = int(state["seed"])
        self._rows = np.empty((self.history, self.n_features))
        self._count = 0
        self.observe(rows)
        self._model = None
        self.refit()
