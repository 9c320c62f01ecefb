"""OTLP/HTTP logs throughput: decoding and mining in process, and optionally POST /v1/logs over loopback.

Workload (seeded): Collector-shaped ExportLogsServiceRequests of about 1,000 log records each, the demo
fleet's lines (`aiops.demo.logs`: 10 services × 1 host, a handful of templates with variable ids,
durations and tokens; severity number and text, resource attributes service.name, host.name,
k8s.cluster.name, deployment.environment), consecutive 100 s windows so intervals close and counts are
published. Prints requests/s and records/s for: the JSON decoder alone; decoder + `LogAnomalies.observe`
(template mining, counting, examples: what a request costs the service besides HTTP); the protobuf
decoder; and with --loopback, gzip JSON into one `aiops serve` worker.

    .venv/bin/python bench/otlp_logs.py [--requests 200] [--loopback] [--seconds 10] [--connections 4]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import msgspec

ROOT = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT]
sys.path.insert(0, str(ROOT.parent))
from aiops.demo.logs import DemoLogs  # noqa: E402
from aiops.demo.simulator import FleetSimulator  # noqa: E402
from aiops.loganomalies import LogAnomalies  # noqa: E402
from aiops.settings import LogSettings  # noqa: E402
from ingest.otlp_logs import OtlpLogsDecoder  # noqa: E402
from ingest.registry import SeriesRegistry  # noqa: E402

sys.path.append(str(ROOT))  # after the packages: bench/otlp*.py must not shadow them
from _server import add_otlp_arguments, protobuf_bodies, report_loopback  # noqa: E402

WINDOW_S = 100.0  # 10 hosts × 1 line/s × 100 s ≈ 1,000 records per request


def _bodies(n: int, now: float) -> list[bytes]:
    sim = FleetSimulator(services=10, hosts_per_service=1, seed=11, origin=now + 1e9)  # no incidents
    logs = DemoLogs(sim, rate_per_host_s=1.0)
    first = now - n * WINDOW_S
    return [msgspec.json.encode(logs.export(first + k * WINDOW_S, first + (k + 1) * WINDOW_S)) for k in range(n)]


def in_process(bodies: list[bytes], now: float, mine: bool, protobuf: bool = False) -> None:
    decoder = OtlpLogsDecoder()
    decode = decoder.decode_protobuf if protobuf else decoder.decode
    logs = LogAnomalies(LogSettings(), SeriesRegistry())
    records = points = 0
    started = time.perf_counter()
    for body in bodies:
        decoded = decode(body, now)
        assert not decoded.rejected, decoded.error_message()
        records += decoded.total
        if mine:
            points += len(logs.observe(decoded.records))
    elapsed = time.perf_counter() - started
    n = len(bodies)
    what = ("protobuf decoder" if protobuf else "JSON decoder") + (" + mining and counting" if mine else "")
    extra = f", {points:,} count points out, {len(logs.monitor.miner)} templates" if mine else ""
    print(f"{what} in-process: {n / elapsed:,.0f} requests/s, {records / elapsed:,.0f} records/s "
          f"({records // n:,} per request, {len(bodies[0]) / 1024:.0f} KiB){extra}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_otlp_arguments(parser)
    args = parser.parse_args()
    now = time.time()
    bodies = _bodies(args.requests, now)
    in_process(bodies, now, mine=False)
    in_process(bodies, now, mine=True)
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    binary = protobuf_bodies(bodies[: max(12, args.requests // 4)], ExportLogsServiceRequest)
    in_process(binary, now, mine=False, protobuf=True)
    if args.loopback:
        first = msgspec.json.decode(bodies[0])
        per_request = sum(len(scope["logRecords"]) for resource in first["resourceLogs"]
                          for scope in resource["scopeLogs"])
        report_loopback("/v1/logs", bodies, args.seconds, args.connections, per_request, "records")


if __name__ == "__main__":
    main()
