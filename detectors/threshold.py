"""Scores are not decisions: this turns calibrated scores into severities, separately swappable."""

from __future__ import annotations

import numpy as np

from detectors.types import Scores

__all__ = ["SEVERITIES", "SeverityThreshold"]

SEVERITIES = ("none", "warning", "critical")  # index = code returned by `classify`


class SeverityThreshold:
    """A ready point with score ≥ `warning` is a warning anomaly, ≥ `critical` a critical one."""

    def __init__(self, warning: float, critical: float) -> None:
        if not 0.0 <= warning <= critical <= 1.0:
            raise ValueError(f"need 0 <= warning <= critical <= 1, got warning={warning}, critical={critical}")
        self.warning = warning
        self.critical = critical

    def classify(self, scores: Scores) -> np.ndarray:
        """Severity code per point: 0 none, 1 warning, 2 critical (see `SEVERITIES`)."""
        code = (scores.score >= self.warning).astype(np.int8) + (scores.score >= self.critical)
        code[~scores.ready] = 0
        return code
