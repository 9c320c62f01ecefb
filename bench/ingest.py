"""Ingest throughput: POST /api/v1/metrics over loopback with 1,000-point batches.

Starts one `aiops serve` process (one worker, pinned to core 0 where the machine has two), drives it
from this process (core 1) with pre-encoded keep-alive HTTP/1.1 requests over several connections,
and prints points/s accepted into the pipeline (202 answers), requests/s, how many requests the
server pushed back (503), and how many points the pipeline had scored by the end.

    .venv/bin/python bench/ingest.py [--seconds 10] [--connections 8] [--series 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import time
import urllib.request
from pathlib import Path

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import running_server  # noqa: E402

BATCH = 1000


def _bodies(series: int, count: int, start: float) -> list[bytes]:
    """`count` request bodies, each 1,000 points spread over `series` series (cpu{host,service,…})."""
    bodies = []
    for b in range(count):
        points = []
        for i in range(BATCH):
            n = (b * BATCH + i) % series
            points.append(
                {
                    "name": "cpu_usage_percent",
                    "labels": {"host": f"host-{n}", "service": f"svc-{n % 50}", "cluster": "bench"},
                    "ts": start + b,
                    "value": 50.0 + (n % 7),
                }
            )
        bodies.append(msgspec.json.encode({"points": points}))
    return bodies


def _request(host: str, body: bytes) -> bytes:
    head = (
        f"POST /api/v1/metrics HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


async def _connection(port: int, requests: list[bytes], deadline: float, stats: dict) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    k = 0
    while time.perf_counter() < deadline:
        writer.write(requests[k % len(requests)])
        k += 1
        status_line = await reader.readline()
        status = int(status_line.split()[1])
        length = 0
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b""):
                break
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        body = await reader.readexactly(length)
        stats[status] = stats.get(status, 0) + 1
        if status == 202:
            stats["points"] += msgspec.json.decode(body)["accepted"]
    writer.close()


async def _drive(port: int, requests: list[bytes], seconds: float, connections: int) -> tuple[dict, float]:
    stats: dict = {"points": 0}
    started = time.perf_counter()
    await asyncio.gather(*[_connection(port, requests, started + seconds, stats) for _ in range(connections)])
    return stats, time.perf_counter() - started


def _scraped(url: str, name: str) -> float:
    text = urllib.request.urlopen(url + "/metrics").read().decode()
    match = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--series", type=int, default=10_000)
    args = parser.parse_args()

    two_cores = (os.cpu_count() or 1) >= 2
    if two_cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {1})
    bodies = _bodies(args.series, 20, time.time() - 3600)
    with running_server(cpu=0 if two_cores else None) as url:
        port = int(url.rsplit(":", 1)[1])
        requests = [_request(f"127.0.0.1:{port}", b) for b in bodies]
        asyncio.run(_drive(port, requests, 1.0, args.connections))  # warm-up: series get interned
        stats, elapsed = asyncio.run(_drive(port, requests, args.seconds, args.connections))
        time.sleep(1.0)
        scored = _scraped(url, "aiops_pipeline_points_total")
    ok = stats.get(202, 0)
    print(f"ingest: {stats['points'] / elapsed:,.0f} points/s accepted ({ok / elapsed:,.0f} requests/s of {BATCH} points, "
          f"{args.connections} connections, {args.series:,} series, {elapsed:.1f} s)")
    print(f"pushed back (503): {stats.get(503, 0)} requests; other statuses: "
          f"{ {k: v for k, v in stats.items() if k not in (202, 503, 'points')} }")
    print(f"pipeline scored {scored:,.0f} points in all (warm-up included)")


if __name__ == "__main__":
    main()
