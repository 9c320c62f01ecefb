"""OTLP/HTTP metrics throughput: the decoder in-process, and optionally POST /v1/metrics over loopback.

Workload (seeded): Collector-shaped ExportMetricsServiceRequests of 1,000 data points each — 10
resources (service.name, host.name, k8s.pod.name, …), each with 60 gauge points (cpu × state), 30
cumulative monotonic sum points (network io by device and direction) and 10 cumulative explicit-bucket
histogram points (14 bounds) — stepping 10 s per request so counters and histograms produce rates
and quantiles. Prints requests/s and data points/s decoded (decode + commit of the rate state) and
output series points/s, for the JSON encoding and then for binary protobuf (fewer requests: slower).

    .venv/bin/python bench/otlp.py [--requests 200] [--loopback] [--seconds 10] [--connections 4]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import msgspec
import numpy as np

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))
from ingest.otlp import OtlpMetricsDecoder  # noqa: E402
from ingest.registry import SeriesRegistry  # noqa: E402

sys.path.insert(0, str(ROOT))
from _server import add_otlp_arguments, protobuf_bodies, report_loopback  # noqa: E402

BOUNDS = [0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0, 10000.0]


def _kv(key: str, value: str) -> dict:
    return {"key": key, "value": {"stringValue": value}}


def _request(step: int, start_ns: int, rng: np.random.Generator) -> bytes:
    t = str(start_ns + step * 10 * 10**9)
    start = str(start_ns - 3600 * 10**9)
    resources = []
    for r in range(10):
        gauges = [{"attributes": [_kv("cpu", f"cpu{c}"), _kv("state", s)], "timeUnixNano": t,
                   "asDouble": float(rng.random())}
                  for c in range(12) for s in ("user", "system", "idle", "wait", "steal")]
        sums = [{"attributes": [_kv("device", f"eth{d}"), _kv("direction", dr)], "startTimeUnixNano": start,
                 "timeUnixNano": t, "asInt": str(1000 * step * (d + 1) + int(rng.integers(0, 100)))}
                for d in range(15) for dr in ("receive", "transmit")]
        hists = []
        for route in range(10):
            counts = [int(c) * (step + 1) for c in rng.integers(0, 50, len(BOUNDS) + 1)]
            hists.append({"attributes": [_kv("http.route", f"/api/{route}")], "startTimeUnixNano": start,
                          "timeUnixNano": t, "count": str(sum(counts)), "sum": 1.0,
                          "bucketCounts": [str(c) for c in counts], "explicitBounds": BOUNDS})
        resources.append({
            "resource": {"attributes": [_kv("service.name", f"svc-{r}"), _kv("host.name", f"node-{r}"),
                                        _kv("k8s.pod.name", f"svc-{r}-7d9f"), _kv("k8s.namespace.name", "prod")]},
            "scopeMetrics": [{"scope": {"name": "otelcol/hostmetricsreceiver", "version": "0.98.0"}, "metrics": [
                {"name": "system.cpu.utilization", "unit": "1", "gauge": {"dataPoints": gauges}},
                {"name": "system.network.io", "unit": "By",
                 "sum": {"dataPoints": sums, "aggregationTemporality": 2, "isMonotonic": True}},
                {"name": "http.server.duration", "unit": "ms",
                 "histogram": {"dataPoints": hists, "aggregationTemporality": 2}},
            ]}],
        })
    return msgspec.json.encode({"resourceMetrics": resources})


def in_process(bodies: list[bytes], now: float, protobuf: bool = False) -> None:
    decoder = OtlpMetricsDecoder(SeriesRegistry())
    decode = decoder.decode_protobuf if protobuf else decoder.decode
    for body in bodies[:2]:  # warm-up: series interned, counter state primed
        decoder.commit(decode(body, now))
    points = outputs = 0
    started = time.perf_counter()
    for body in bodies[2:]:
        decoded = decode(body, now)
        decoder.commit(decoded)
        points += decoded.total
        outputs += len(decoded.batch)
        assert not decoded.rejected, decoded.error_message()
    elapsed = time.perf_counter() - started
    n = len(bodies) - 2
    print(f"decoder in-process ({'protobuf' if protobuf else 'JSON'}): {n / elapsed:,.0f} requests/s, {points / elapsed:,.0f} data points/s "
          f"({points // n:,} per request, {len(bodies[2]) / 1024:.0f} KiB), "
          f"{outputs / elapsed:,.0f} series points/s out, {len(decoder.registry):,} series")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_otlp_arguments(parser)
    args = parser.parse_args()
    rng = np.random.default_rng(11)
    now = time.time()
    start_ns = int(now - 2 * 10 * args.requests) * 10**9
    bodies = [_request(step, start_ns, rng) for step in range(args.requests)]
    in_process(bodies, now)
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    binary = protobuf_bodies(bodies[: max(12, args.requests // 4)], ExportMetricsServiceRequest)
    in_process(binary, now, protobuf=True)
    if args.loopback:
        report_loopback("/v1/metrics", bodies, args.seconds, args.connections, 1000, "data points")  # 1000 per request


if __name__ == "__main__":
    main()
