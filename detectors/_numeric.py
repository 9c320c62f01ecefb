"""Compiled scalar helpers inlined into detector kernels."""

from __future__ import annotations

import math

import numba

__all__ = ["DIRECTIONS", "directional", "floored", "gaussian_surprise", "surprise", "write_band"]

UP, DOWN, BOTH = 1, -1, 0
DIRECTIONS = {"up": UP, "down": DOWN, "both": BOTH}


_LOG10E = 0.4342944819032518


@numba.njit(inline="always", cache=True)
def surprise(log10_tail: float) -> float:
    """The common score scale: −log10(tail probability) / 10, in [0, 1].

    0.4 means a tail probability of 1e-4 (one in 10,000 normal points), 0.6 one in a million, 1
    anything rarer than 1e-10. Every detector reports on this scale, so one threshold means the same
    rarity whichever detector produced the score.
    """
    s = -log10_tail * 0.1
    return 0.0 if s < 0.0 else 1.0 if s > 1.0 else s


@numba.njit(inline="always", cache=True)
def gaussian_surprise(z: float) -> float:
    """`surprise` of the two-sided Gaussian tail of |z|: log10 erfc(|z|/√2), computed without underflow.

    Abramowitz & Stegun 7.1.26 gives erfc(x) = poly(t)·exp(−x²) (relative error small where it
    matters), so log10 erfc(x) = log10 poly(t) − x²·log10 e: one log, no exp, exact far in the tail.
    """
    x = abs(z) * 0.7071067811865476
    t = 1.0 / (1.0 + 0.3275911 * x)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return surprise(math.log10(poly) - x * x * _LOG10E)


@numba.njit(inline="always", cache=True)
def directional(deviation: float, direction: int) -> float:
    """The deviation if it points the watched way (UP, DOWN or BOTH), else 0."""
    if direction == UP:
        return deviation if deviation > 0.0 else 0.0
    if direction == DOWN:
        return deviation if deviation < 0.0 else 0.0
    return deviation


@numba.njit(inline="always", cache=True)
def floored(std: float, center: float, min_std: float, rel_min_std: float) -> float:
    """`std`, but at least `min_std` and `rel_min_std`·|center|."""
    floor = max(min_std, rel_min_std * abs(center))
    return std if std > floor else floor


@numba.njit(inline="always", cache=True)
def write_band(i, center, std, band, expected, lower, upper) -> None:
    expected[i] = center
    lower[i] = center - band * std
    upper[i] = center + band * std
