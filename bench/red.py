"""Spans/s through RED aggregation (per service and operation, per minute) and the service map.

    .venv/bin/python bench/red.py [--spans 1000000] [--batch 10000]

Synthetic traces: 20 services × 10 operations, each span a child of a span of the previous batch or of
its own batch (so edges resolve across batches), exponential latencies, 1% errors, one minute of spans
per 100,000. Prints spans/s on one core, the intervals (per service/operation and per edge) and edges
it produced.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]  # bench/detectors.py is not the package

from detectors.red import RedAggregator, SpanBatch  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=10_000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    services = np.array([f"svc{i}" for i in range(20)], dtype=object)
    operations = np.array([f"op{i}" for i in range(10)], dtype=object)
    batches = []
    for b in range(args.spans // args.batch):
        ids = np.array([f"{b}-{i}" for i in range(args.batch)], dtype=object)
        parent_rows = rng.integers(0, args.batch, args.batch)
        parents = np.array([f"{max(b - 1, 0)}-{p}" for p in parent_rows], dtype=object)
        parents[rng.random(args.batch) < 0.2] = ""
        end = 1.8e9 + (b * args.batch + np.arange(args.batch)) * 60 / 100_000
        batches.append(SpanBatch(ids, parents, services[rng.integers(0, 20, args.batch)],
                                 operations[rng.integers(0, 10, args.batch)], end,
                                 rng.exponential(50, args.batch), rng.random(args.batch) < 0.01))
    agg = RedAggregator(interval_s=60)
    started = time.perf_counter()
    intervals = edge_intervals = 0
    for batch in batches:
        points, _ = agg.add(batch)
        intervals += 0 if points is None else len(points.rate)
        edge_intervals += 0 if points is None else len(points.edges)
    elapsed = time.perf_counter() - started
    total = len(batches) * args.batch
    print(f"{total:,} spans in batches of {args.batch:,}, one core")
    print(f"RED aggregation + service map: {total / elapsed:,.0f} spans/s "
          f"({intervals:,} service/operation intervals and {edge_intervals:,} edge intervals closed, "
          f"{len(agg.edges)} edges)")


if __name__ == "__main__":
    main()
