"""The detector protocol: explicit state arrays indexed by series id, and three verbs."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from detectors.types import MetricBatch, Scores

__all__ = ["Detector"]


@runtime_checkable
class Detector(Protocol):
    """A streaming anomaly detector over many series at once.

    `update` is causal: the score of a point uses only earlier points of its series and itself.
    Series ids may be new at any call; state grows by appending. `state_dict` returns plain numpy
    arrays and numbers that `load_state_dict` restores exactly, so a checkpoint taken between two
    batches gives the same scores afterwards as an uninterrupted run.
    """

    name: str

    def update(self, batch: MetricBatch) -> Scores: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...
