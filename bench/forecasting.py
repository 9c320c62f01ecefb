"""Forecaster throughput: 10,000 synthetic hourly series of 30 days, 48 hours ahead.

Each series has a daily and a weekly cycle, a trend and noise (seeded). Prints series/s on one core
for the fast path (one candidate, and the default automatic choice over all candidates) over all
series, and for the library forecasters (statsmodels Holt-Winters and ETS, the automatic choice
with statsmodels' fitted Holt-Winters as one more candidate, Prophet) on a small sample; then the ratio of the automatic choice to Prophet measured in this run. Also prints, on the
sample, the accuracy of each against the 48 hours held back (MASE against seasonal naive in the
history, and the coverage of the 80% interval), so a speed figure never hides a worse forecast.
The library forecasters' time includes the one backtest refit that gives their backtest error,
as the fast path's includes its whole rolling-origin backtest.

    .venv/bin/python bench/forecasting.py [--series 10000] [--sample 20] [--prophet-sample 10]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

_HERE = Path(__file__).resolve().parent
# this script is named after the package it measures: keep its folder off the import path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from forecasting import forecast, forecast_many  # noqa: E402

HOUR, DAYS, H = 3600.0, 30, 48


def _workload(series: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(values (series, 30 days + 48 h), timestamps): the last 48 columns are held back."""
    rng = np.random.default_rng(seed)
    n = DAYS * 24 + H
    t = np.arange(n)
    level = rng.uniform(20, 200, (series, 1))
    day = level * rng.uniform(0.05, 0.3, (series, 1)) * np.sin(2 * np.pi * (t[None, :] - rng.integers(0, 24, (series, 1))) / 24)
    weekend = level * rng.uniform(0, 0.2, (series, 1)) * ((t[None, :] // 24) % 7 >= 5)
    trend = level * rng.normal(0, 0.002, (series, 1)) * t[None, :]
    noise = level * rng.uniform(0.01, 0.08, (series, 1)) * rng.standard_normal((series, n))
    return level + day - weekend + trend + noise, 1.7e9 + HOUR * t


def _accuracy(history: np.ndarray, actual: np.ndarray, yhat: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> str:
    scale = np.abs(history[:, 24:] - history[:, :-24]).mean(axis=1)
    mase = (np.abs(actual - yhat).mean(axis=1) / scale).mean()
    cover = ((lower <= actual) & (actual <= upper)).mean()
    return f"MASE {mase:5.3f}  cov80 {cover:4.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--sample", type=int, default=20, help="series for the statsmodels forecasters")
    parser.add_argument("--prophet-sample", type=int, default=10)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})  # one core
    values, ts = _workload(args.series)
    hist, actual, hts = values[:, :-H], values[:, -H:], ts[:-H]
    print(f"{args.series:,} series x {DAYS} days hourly, horizon {H} h, one core")
    print(f"{'forecaster':<42} {'series':>7} {'series/s':>10}   {'on the first ' + str(args.sample) + ' series':<26} on all it ran")
    rates: dict[str, float] = {}

    def row(name: str, count: int, seconds: float, yhat, lower, upper) -> None:
        rates[name] = count / seconds
        k = min(args.sample, len(yhat))
        acc = _accuracy(hist[:k], actual[:k], yhat[:k], lower[:k], upper[:k])
        every = _accuracy(hist[:count], actual[:count], yhat, lower, upper) if count > k else ""
        print(f"{name:<42} {count:>7,} {rates[name]:>10,.1f}   {acc:<26} {every}")

    forecast_many(hist[:8], H, ts=hts)  # warm-up (first-call imports)
    for name, only in (("fast path: one candidate (drift7)", ["drift7"]), ("auto: fast path, all candidates (default)", None)):
        started = time.perf_counter()
        out = forecast_many(hist, H, ts=hts, candidates=only)
        row(name, args.series, time.perf_counter() - started, out.yhat, out.lower, out.upper)

    for name, model, count in (
        ("statsmodels Holt-Winters (damped, daily)", "holt_winters", args.sample),
        ("statsmodels ETS (auto, AICc)", "ets", args.sample),
        ("auto_ets: auto + fitted statsmodels HW", "auto_ets", args.sample),
        ("Prophet (daily + weekly)", "prophet", args.prophet_sample),
    ):
        try:
            forecast(hist[0][-24 * 5 :], 4, ts=hts[-24 * 5 :], model=model)  # load the library once
        except Exception as exc:  # noqa: BLE001 - report and go on: the other rows still mean something
            print(f"{name:<42} unavailable: {exc}")
            continue
        started = time.perf_counter()
        results = [forecast(hist[i], H, ts=hts, model=model) for i in range(count)]
        elapsed = time.perf_counter() - started
        stack = [np.array([getattr(r, f) for r in results]) for f in ("yhat", "lower", "upper")]
        row(name, count, elapsed, *stack)
    if "Prophet (daily + weekly)" in rates:
        auto = rates["auto: fast path, all candidates (default)"]
        print(f"auto / Prophet speed ratio (same run): {auto / rates['Prophet (daily + weekly)']:,.0f}x")


if __name__ == "__main__":
    main()
