"""The demo fleet's logs: what each host writes, as OTLP/JSON export requests for POST /v1/logs.

Pure computation, no I/O: the feeder posts `export(start, end)`. Each host writes about `rate_per_host_s`
lines a second, drawn from a handful of templates with variable ids, sizes and durations (mostly INFO,
a few WARN, rarely an ERROR, and one line carrying a session token, which anomalies show masked). During an
injected `error_burst` every host of the service also logs `BURST_RATE_PER_S` ERROR lines a second of a
template never written before (`connection pool exhausted … timeout after <n> ms`): a never-seen template,
and a burst of `log_error_count`, which both become log anomalies with example lines.

Draws come from a generator seeded by (seed, the window's start in ms), so a window always gives the same
lines.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from aiops.demo.simulator import FleetSimulator

__all__ = ["BURST_RATE_PER_S", "DemoLogs"]

BURST_RATE_PER_S = 8.0  # ERROR lines a second per host of the service in an error burst
_LOGS = 3  # random stream of the simulator's seed (0-2 are the simulator's own)
_INFO, _WARN, _ERROR = 9, 13, 17
_CLUSTER, _ENV = "demo-1", "demo"


def _templates(service: str, rng: np.random.Generator, n: int) -> list[tuple[int, str]]:
    """`n` ordinary lines of `service`: (severity, text), by a fixed mix of templates."""
    kind = rng.choice(7, size=n, p=[0.40, 0.20, 0.12, 0.12, 0.1, 0.04, 0.02])
    ids = rng.integers(1000, 99999, size=n)
    ms = rng.gamma(2.0, 20.0, size=n).round().astype(int) + 1
    lines = []
    for k, i, d in zip(kind.tolist(), ids.tolist(), ms.tolist()):  # a loop over lines: they are text
        if k == 0:
            lines.append((_INFO, f"GET /api/{service}/items/{i} completed status=200 in {d} ms"))
        elif k == 1:
            lines.append((_INFO, f"POST /api/{service}/orders/{i} completed status=201 in {d * 2} ms"))
        elif k == 2:
            lines.append((_INFO, f"user {i} signed in session_token={i * 7919:x}{i:08x}{d:06x}deadbeefcafe"))
        elif k == 3:
            lines.append((_INFO, f"flushed {d} metrics to collector in {d // 3 + 1} ms"))
        elif k == 4:
            lines.append((_INFO, f"cache {service} hit ratio {60 + i % 40}% over {i % 500 + 100} lookups"))
        elif k == 5:
            lines.append((_WARN, f"slow query on table orders took {d * 20} ms (rows={i})"))
        else:
            lines.append((_ERROR, f"request {i} failed: upstream answered 502 after {d} ms"))
    return lines


def _burst(rng: np.random.Generator, n: int) -> list[tuple[int, str]]:
    busy = rng.integers(48, 65, size=n).tolist()
    ms = rng.integers(2900, 3200, size=n).tolist()
    db = rng.integers(1, 3, size=n).tolist()
    return [(_ERROR, f"connection pool exhausted for db-{d}: {b} of {b} connections busy, timeout after {t} ms")
            for d, b, t in zip(db, busy, ms)]


class DemoLogs:
    """Log lines of the `simulator`'s hosts, and its error bursts, as OTLP export requests."""

    def __init__(self, simulator: FleetSimulator, rate_per_host_s: float = 1.0) -> None:
        self.simulator = simulator
        self.rate_per_host_s = rate_per_host_s

    def export(self, start: float, end: float) -> dict[str, Any]:
        """An ExportLogsServiceRequest (OTLP JSON) of what every host logged in [start, end)."""
        rng = np.random.default_rng([self.simulator.seed, _LOGS, round(start * 1000) % 2**64])
        bursts = [i for i in self.simulator.incidents_between(start, end) if i.kind == "error_burst"]
        resources = []
        for service, host in self.simulator.hosts:  # a loop over hosts: one resource each
            n = int(rng.poisson(self.rate_per_host_s * max(end - start, 0.0)))
            lines = _templates(service, rng, n)
            ts = (start + (end - start) * rng.random(n)).tolist()
            for incident in bursts:
                if incident.service != service:
                    continue
                lo, hi = max(start, incident.start), min(end, incident.end)
                k = int(rng.poisson(BURST_RATE_PER_S * max(hi - lo, 0.0)))
                lines += _burst(rng, k)
                ts += (lo + (hi - lo) * rng.random(k)).tolist()
            if lines:
                resources.append(_resource(service, host, ts, lines))
        return {"resourceLogs": resources}


def _resource(service: str, host: str, ts: list[float], lines: list[tuple[int, str]]) -> dict[str, Any]:
    names = {_INFO: "INFO", _WARN: "WARN", _ERROR: "ERROR"}
    order = sorted(range(len(ts)), key=ts.__getitem__)
    return {
        "resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": service}},
            {"key": "host.name", "value": {"stringValue": host}},
            {"key": "k8s.cluster.name", "value": {"stringValue": _CLUSTER}},
            {"key": "deployment.environment", "value": {"stringValue": _ENV}},
        ]},
        "scopeLogs": [{"scope": {"name": "aiops.demo"}, "logRecords": [
            {"timeUnixNano": str(int(ts[j] * 1e9)), "severityNumber": lines[j][0], "severityText": names[lines[j][0]],
             "body": {"stringValue": lines[j][1]}}
            for j in order
        ]}],
    }
