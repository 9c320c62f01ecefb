"""Start an `aiops serve` process on a free loopback port for a benchmark, and stop it; drive it over loopback.

`post_loopback` is the client side the OTLP/HTTP benches share (bench/otlp.py, otlp_logs.py,
otlp_traces.py): gzip JSON bodies POSTed by a few keep-alive connections, as a Collector's otlphttp
exporter sends them, with the server and the client pinned to different cores when there are two;
`protobuf_bodies` turns the benches' JSON requests into the same requests in binary protobuf.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from contextlib import contextmanager


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_server(extra_env: dict[str, str] | None = None, cpu: int | None = None):
    """Yield the base URL of a fresh server with its own data dir; `cpu` pins it to one core."""
    port = free_port()
    with tempfile.TemporaryDirectory() as data_dir:
        env = {**os.environ, "AIOPS_DATA_DIR": data_dir, "AIOPS_LOGGING__LEVEL": "warning", **(extra_env or {})}
        cmd = [sys.executable, "-m", "aiops", "serve", "--port", str(port)]
        if cpu is not None and hasattr(os, "sched_setaffinity"):
            cmd = ["taskset", "-c", str(cpu), *cmd]
        proc = subprocess.Popen(cmd, env=env)
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    with urllib.request.urlopen(url + "/readyz", timeout=1) as r:
                        if r.status == 200:
                            break
                except OSError:
                    time.sleep(0.1)
            else:
                raise RuntimeError("server did not become ready")
            yield url
        finally:
            proc.terminate()
            proc.wait(20)


def add_otlp_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every OTLP/HTTP bench takes: workload size and the loopback run."""
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--loopback", action="store_true")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=4)


async def _connection(port: int, requests: list[bytes], deadline: float, stats: dict) -> None:
    """Send `requests` one after another on one keep-alive connection until `deadline`, counting statuses."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    k = 0
    while time.perf_counter() < deadline and k < len(requests):
        writer.write(requests[k])
        k += 1
        status = int((await reader.readline()).split()[1])
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
        stats[status] = stats.get(status, 0) + 1
    writer.close()


def post_loopback(path: str, bodies: list[bytes], seconds: float, connections: int) -> tuple[dict[int, int], float, int]:
    """POST the gzipped JSON `bodies` to `path` of a fresh server for up to `seconds`.

    Returns the count of answers by status, the elapsed seconds and the size of the first gzipped body.
    Each connection sends its own slice of the bodies, in order (time steps stay in order per connection).
    """
    two_cores = (os.cpu_count() or 1) >= 2
    if two_cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {1})
    zipped = [gzip.compress(b) for b in bodies]
    with running_server(cpu=0 if two_cores else None) as url:
        port = int(url.rsplit(":", 1)[1])
        head = ("POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
                "Content-Encoding: gzip\r\nContent-Length: {n}\r\n\r\n")
        requests = [head.format(path=path, port=port, n=len(z)).encode() + z for z in zipped]
        slices = [requests[c::connections] for c in range(connections)]
        stats: dict[int, int] = {}
        started = time.perf_counter()

        async def drive() -> None:
            await asyncio.gather(*[_connection(port, s, started + seconds, stats) for s in slices])

        asyncio.run(drive())
        elapsed = time.perf_counter() - started
    return stats, elapsed, len(zipped[0])


def report_loopback(path: str, bodies: list[bytes], seconds: float, connections: int, per_request: int,
                    unit: str) -> None:
    """`post_loopback`, then one line: requests/s and `unit`/s answered 200, with the statuses seen."""
    stats, elapsed, size = post_loopback(path, bodies, seconds, connections)
    ok = stats.get(200, 0)
    print(f"POST {path} over loopback (gzip JSON, {size / 1024:.0f} KiB): {ok / elapsed:,.0f} requests/s, "
          f"{ok * per_request / elapsed:,.0f} {unit}/s ({connections} connections, {elapsed:.1f} s); "
          f"statuses {stats}")


def protobuf_bodies(bodies: list[bytes], request_type: type, adjust: Callable[[dict], dict] | None = None) -> list[bytes]:
    """The OTLP/JSON `bodies` as binary protobuf `request_type` messages (`adjust`: JSON → the dict
    ParseDict wants, e.g. hex ids as base64)."""
    import msgspec
    from google.protobuf.json_format import ParseDict

    adjust = adjust or (lambda request: request)
    return [ParseDict(adjust(msgspec.json.decode(b)), request_type()).SerializeToString() for b in bodies]
