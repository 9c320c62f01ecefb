"""Detector throughput and memory: 100,000 series streaming in time steps.

Each time step is one batch holding one point of every series, the series ids in a fresh random
order (not a pre-aligned matrix). Prints, for every detector and the default ensemble, points/s on
one core, bytes of state per series, and the ratio to a straightforward per-series Python
implementation of the same detector (bench/_reference.py) timed in the same run on a subset.

    .venv/bin/python bench/detectors.py [--series 100000] [--steps 30] [--subset 2000]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path

import numpy as np

_HERE = Path(__file__).resolve().parent
# this script is named after the package it measures: keep its folder off the import path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from detectors import MetricBatch  # noqa: E402
from detectors.registry import default_registry  # noqa: E402

_spec = importlib.util.spec_from_file_location("_reference", _HERE / "_reference.py")
_reference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_reference)
REFERENCES = _reference.REFERENCES


def _workload(series: int, steps: int, seed: int = 0) -> list[MetricBatch]:
    rng = np.random.default_rng(seed)
    level = rng.uniform(10, 100, series)
    batches = []
    for t in range(steps):
        ids = rng.permutation(series).astype(np.int32)
        values = level[ids] * (1 + 0.05 * rng.standard_normal(series))
        batches.append(MetricBatch.from_arrays(ids, np.full(series, 1.8e9 + 300.0 * t), values))
    return batches


def _time_vectorized(name: str, batches: list[MetricBatch], repeats: int = 3) -> tuple[float, int]:
    """Best of `repeats` passes over the steps (the stream goes on; the machine's noise does not count)."""
    detector = default_registry().create(name)
    detector.update(batches[0])  # compile, and every series appears
    best = 0.0
    for _ in range(repeats):
        started = time.perf_counter()
        points = 0
        for batch in batches[1:]:
            detector.update(batch)
            points += len(batch)
        best = max(best, points / (time.perf_counter() - started))
    return best, detector.state_bytes_per_series()


def _time_reference(name: str, batches: list[MetricBatch], subset: int) -> float:
    objects: dict[int, object] = {}
    cls = REFERENCES[name]
    started = time.perf_counter()
    points = 0
    for batch in batches:
        keep = batch.series_id < subset
        for sid, t, x in zip(batch.series_id[keep].tolist(), batch.ts[keep].tolist(), batch.value[keep].tolist()):
            obj = objects.get(sid)
            if obj is None:
                obj = objects[sid] = cls()
            obj.step(t, x)
            points += 1
    return points / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--subset", type=int, default=2000, help="series timed with the Python reference")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})  # one core
    batches = _workload(args.series, args.steps)
    print(f"{args.series:,} series x {args.steps} steps, one core; reference on {args.subset:,} series")
    print(f"{'detector':<12} {'points/s':>14} {'state B/series':>15} {'python ref points/s':>20} {'speed-up':>9}")
    for name in ["ewma_zscore", "robust_mad", "level_shift", "seasonal", "ensemble"]:
        rate, state = _time_vectorized(name, batches)
        ref = _time_reference(name, batches[: max(2, args.steps // 3)], args.subset)
        print(f"{name:<12} {rate:>14,.0f} {state:>15,} {ref:>20,.0f} {rate / ref:>8.0f}x")


if __name__ == "__main__":
    main()
