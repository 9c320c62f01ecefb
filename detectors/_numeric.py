"""Compiled scalar helpers inlined into detector kernels."""

from __future__ import annotations

import math

import numba

__all__ = ["DIRECTIONS", "direction_bounds", "directional", "floored", "gaussian_surprise", "surprise", "upper_tail_surprise", "write_band"]

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
    return min(1.0, max(0.0, -log10_tail * 0.1))  # min/max compile to branch-free instructions


# log10 of the Abramowitz & Stegun 7.1.26 polynomial, fitted as a degree-5 polynomial in its own t
# over t in [0.38, 1] (beyond, the score is 1 anyway): |error| < 2e-5 in log10, below the
# approximation's own error (score error < 3e-4 against scipy's erfc). It replaces a log per point.
_L5, _L4, _L3, _L2, _L1, _L0 = (
    0.26815849258291335, -1.574290863949088, 3.4265835137410603, -3.5408449233029673, 3.2544096865482866,
    -1.834010030905514,
)
_LOG10_2 = 0.3010299956639812


@numba.njit(inline="always", cache=True)
def _log10_erfc(u: float) -> float:
    """log10 erfc(u) for u >= 0, without exp, log or underflow (u² term exact)."""
    t = 1.0 / (1.0 + 0.3275911 * u)
    return (((((_L5 * t + _L4) * t + _L3) * t + _L2) * t + _L1) * t + _L0) - u * u * _LOG10E


@numba.njit(inline="always", cache=True)
def gaussian_surprise(z: float) -> float:
    """`surprise` of the two-sided Gaussian tail of |z|: P(|N(0,1)| ≥ |z|) = erfc(|z|/√2)."""
    return surprise(_log10_erfc(abs(z) * 0.7071067811865476))


@numba.njit(inline="always", cache=True)
def upper_tail_surprise(z: float) -> float:
    """`surprise` of the one-sided upper tail P(N(0,1) ≥ z) = erfc(z/√2)/2; below the mean, 0."""
    if z <= 0.0:
        return 0.0
    return surprise(_log10_erfc(z * 0.7071067811865476) - _LOG10_2)


@numba.njit(inline="always", cache=True)
def direction_bounds(direction: int) -> tuple[float, float]:
    """Clamp bounds for deviations watched the `direction` way (UP, DOWN or BOTH); call outside loops."""
    low = 0.0 if direction == UP else -math.inf
    high = 0.0 if direction == DOWN else math.inf
    return low, high


@numba.njit(inline="always", cache=True)
def directional(deviation: float, low: float, high: float) -> float:
    """The deviation if it points the watched way, else 0: a branch-free clamp (twice as fast in a
    kernel as testing the direction per point)."""
    return min(max(deviation, low), high)


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
