"""OTLP/HTTP traces throughput: decoding, decoding + RED aggregation in-process, and POST /v1/traces over loopback.

Workload (seeded): Collector-shaped ExportTraceServiceRequests of 1,000 spans each — 200 traces of 5
spans over 10 services (a SERVER root, a CLIENT call and the callee's SERVER span, a second CLIENT
call and its SERVER span), each span with the attributes HTTP instrumentation writes (method, route,
status code, server address, user agent), 1% errors; each request one second after the previous, so
RED intervals close as they would in production (60 s intervals, 30 s grace).

    .venv/bin/python bench/otlp_traces.py [--requests 200] [--loopback] [--seconds 10] [--connections 4]

Prints requests/s and spans/s for: the decoder (JSON, then protobuf), the decoder followed by the
service's TraceMonitor (RED + edge aggregation, series interning, service map), and with --loopback
the whole route (gzip JSON into one `aiops serve` worker pinned to one core).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import msgspec
import numpy as np

ROOT = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT]  # bench/*.py are not the packages
sys.path.insert(0, str(ROOT.parent))
from aiops.settings import TracesSettings  # noqa: E402
from aiops.topology import ServiceMap  # noqa: E402
from aiops.traces import TraceMonitor  # noqa: E402
from ingest.otlp_traces import OtlpTracesDecoder  # noqa: E402
from ingest.registry import SeriesRegistry  # noqa: E402

sys.path.append(str(ROOT))  # after the packages: bench/otlp*.py must not shadow them
from _server import add_otlp_arguments, protobuf_bodies, report_loopback  # noqa: E402

SERVICES = 10


def _kv(key: str, value) -> dict:
    return {"key": key, "value": {"intValue": str(value)} if isinstance(value, int) else {"stringValue": value}}


def _request(step: int, start_s: float, rng: np.random.Generator, ids: list[int]) -> bytes:
    by_service: list[list[dict]] = [[] for _ in range(SERVICES)]
    t0 = start_s + step

    def span(svc: int, parent: str, name: str, kind: int, trace: str, start: float, ms: float, error: bool) -> str:
        ids[0] += 1
        span_id = f"{ids[0]:016x}"
        by_service[svc].append({
            "traceId": trace, "spanId": span_id, "parentSpanId": parent, "name": name, "kind": kind,
            "startTimeUnixNano": str(int(start * 1e9)), "endTimeUnixNano": str(int((start + ms / 1000) * 1e9)),
            "attributes": [_kv("http.request.method", "POST"), _kv("http.route", name),
                           _kv("http.response.status_code", 500 if error else 200),
                           _kv("server.address", f"svc-{svc}"), _kv("user_agent.original", "okhttp/4.12")],
            "events": [], "links": [], "status": {"code": 2} if error else {},
        })
        return span_id

    for k in range(200):
        trace = f"{step:016x}{k + 1:016x}"
        root_svc = int(rng.integers(0, SERVICES))
        at = t0 + k / 200
        root = span(root_svc, "", f"/api/{root_svc}", 2, trace, at, 80.0, False)
        for hop in (1, 2):
            callee = (root_svc + hop) % SERVICES
            ms = float(rng.exponential(20.0))
            failed = bool(rng.random() < 0.01)
            client = span(root_svc, root, f"call svc-{callee}", 3, trace, at + 0.001 * hop, ms + 1, failed)
            span(callee, client, f"/internal/{hop}", 2, trace, at + 0.001 * hop, ms, failed)
    return msgspec.json.encode({"resourceSpans": [
        {"resource": {"attributes": [_kv("service.name", f"svc-{s}"), _kv("host.name", f"node-{s}"),
                                     _kv("k8s.pod.name", f"svc-{s}-7d9f")]},
         "scopeSpans": [{"scope": {"name": "io.opentelemetry.okhttp-3.0", "version": "2.1.0"}, "spans": spans}]}
        for s, spans in enumerate(by_service) if spans]})


def in_process(bodies: list[bytes], now: float, protobuf: bool = False, aggregate: bool = False) -> None:
    decoder = OtlpTracesDecoder()
    decode = decoder.decode_protobuf if protobuf else decoder.decode
    monitor = TraceMonitor(TracesSettings(), SeriesRegistry(), ServiceMap())
    spans = points = 0
    started = time.perf_counter()
    for body in bodies:
        decoded = decode(body, now)
        assert not decoded.rejected, decoded.error_message()
        spans += decoded.total
        if aggregate:
            batch, _ = monitor.observe(decoded.spans)
            points += len(batch)
    elapsed = time.perf_counter() - started
    what = f"decoder{' + RED aggregation' if aggregate else ''} in-process ({'protobuf' if protobuf else 'JSON'})"
    extra = f", {points:,} RED/edge points out, {len(monitor.service_map.edges())} edges" if aggregate else ""
    print(f"{what}: {len(bodies) / elapsed:,.0f} requests/s, {spans / elapsed:,.0f} spans/s "
          f"({spans // len(bodies):,} per request, {len(bodies[0]) / 1024:.0f} KiB){extra}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_otlp_arguments(parser)
    args = parser.parse_args()
    rng = np.random.default_rng(13)
    now = time.time()
    ids = [0]
    bodies = [_request(step, now - args.requests - 60, rng, ids) for step in range(args.requests)]
    in_process(bodies, now)
    in_process(bodies, now, aggregate=True)
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    def base64_ids(request: dict) -> dict:  # protobuf's JSON mapping has bytes as base64, OTLP/JSON as hex
        for rs in request["resourceSpans"]:
            for span in rs["scopeSpans"][0]["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    span[key] = _b64(span[key])
        return request

    in_process(protobuf_bodies(bodies, ExportTraceServiceRequest, base64_ids), now, protobuf=True)
    if args.loopback:
        report_loopback("/v1/traces", bodies, args.seconds, args.connections, 1000, "spans")  # 1000 per request


def _b64(hex_id: str) -> str:
    import base64

    return base64.b64encode(bytes.fromhex(hex_id)).decode()


if __name__ == "__main__":
    main()
