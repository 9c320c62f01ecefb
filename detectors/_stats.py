"""Small vectorized numerical helpers shared by detectors (no scipy on the hot path)."""

from __future__ import annotations

import numpy as np

__all__ = ["gaussian_confidence"]

# Abramowitz & Stegun 7.1.26: erf(x) for x >= 0 with absolute error below 1.5e-7.
_P = 0.3275911
_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


def gaussian_confidence(z: np.ndarray) -> np.ndarray:
    """1 − two-sided Gaussian tail probability of |z|, i.e. erf(|z|/√2), in [0, 1].

    A score of 0.9999 means a deviation this large happens about once in 10,000 normal points.
    """
    x = np.abs(z) * (1.0 / np.sqrt(2.0))
    t = 1.0 / (1.0 + _P * x)
    poly = t * (_A[0] + t * (_A[1] + t * (_A[2] + t * (_A[3] + t * _A[4]))))
    return np.clip(1.0 - poly * np.exp(-x * x), 0.0, 1.0)
