"""Start an `aiops serve` process on a free loopback port for a benchmark, and stop it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
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
