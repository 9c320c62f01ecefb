"""The demo fleet's traces: per sample, a few requests to every service following `demo_topology`.

Pure computation (`DemoTraces.export(ts)` → an OTLP/JSON `ExportTraceServiceRequest`), plus the small
async poster the feeder calls. Each request is a trace rooted at one service (a SERVER span); that
service calls each of its callees in turn (a CLIENT span, and the callee's SERVER span as its child),
so every edge of the demo map is seen in every sample. A service's SERVER span lasts its own work plus
the calls it makes, so slowness flows from a dependency to its callers, as in the metrics.

Incidents act on spans too: a latency regression on X multiplies X's own work by `REGRESSION` (the
spans into X and X's latency series rise, and the edges caller → X show it), an error burst marks a
fifth of X's spans ERROR. Requests per service per sample are `requests` ± 1, own work within ±15% of
the service's mean latency: bounded noise, so a quiet day holds the whole range and only an incident
leaves it (the ensemble's range member flags a new extreme). Requests end at `ts` or a little before;
given the service's RED `interval_s`, none starts before the interval holding `ts`, so each interval
counts one sample's requests (a request longer than what is left of the interval ends after `ts`). Draws come from a
generator seeded by (seed, stream, ts in ms): the same sample whenever it is asked for.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import httpx
import numpy as np

from aiops.demo._http import post_retrying
from aiops.demo.simulator import METRICS, FleetSimulator

__all__ = ["DemoTraces", "REGRESSION", "merge", "post_traces"]

log = logging.getLogger(__name__)

REGRESSION = 4.0  # a latency regression multiplies the service's own work by this (as the metrics' ×4)
_ERROR_SHARE = 0.2
_STREAM = 3  # draws independent of the simulator's streams
_SERVER, _CLIENT = 2, 3


class DemoTraces:
    """Traces of `simulator`'s fleet; `requests` is the mean number of requests per service per sample."""

    def __init__(self, simulator: FleetSimulator, requests: int = 4, interval_s: float | None = None) -> None:
        if requests < 1:
            raise ValueError(f"requests must be at least 1, got {requests}")
        self.interval_s = interval_s  # the service's RED interval: a sample's requests start inside ts's interval
        self.simulator = simulator
        self.requests = requests
        services = simulator.services
        latency = simulator.values(simulator.origin - 86400.0)[:, METRICS.index("http_request_duration_seconds")]
        owner = np.array([services.index(svc) for svc, _ in simulator.hosts])
        self._own_ms = 1000.0 * np.bincount(owner, weights=latency) / np.bincount(owner)  # a quiet day, per service
        self._callees = [[services.index(c) for c in simulator.topology.get(s, [])] for s in services]

    def export(self, ts: float) -> dict:
        """One sample's spans as an OTLP/JSON ExportTraceServiceRequest (resourceSpans per service)."""
        sim = self.simulator
        rng = np.random.default_rng([sim.seed, _STREAM, round(ts * 1000) % 2**64])
        slow = np.ones(len(sim.services))
        failing = np.zeros(len(sim.services))
        incident = sim.incident_at(ts)
        if incident is not None and incident.kind == "latency_regression":
            slow[sim.services.index(incident.service)] = REGRESSION
        if incident is not None and incident.kind == "error_burst":
            failing[sim.services.index(incident.service)] = _ERROR_SHARE
        spans: list[list[dict]] = [[] for _ in sim.services]
        ids = _Ids(rng)
        counts = rng.integers(self.requests - 1, self.requests + 2, len(sim.services))
        for s, n in enumerate(counts.tolist()):  # a loop over requests (a few per service), not a hot path
            for _ in range(n):
                trace = ids.trace()
                own = self._own_ms[s] * slow[s] * _jitter(rng)
                calls = []
                for c in self._callees[s]:
                    callee_ms = self._own_ms[c] * slow[c] * _jitter(rng)
                    calls.append((c, callee_ms, bool(rng.random() < failing[c])))
                total = own + sum(ms + 1.0 for _, ms, _ in calls)
                start = ts - total / 1000.0 - rng.random() * 0.5
                if self.interval_s:  # one sample's requests in one interval, however the samples fall
                    start = max(start, np.floor(ts / self.interval_s) * self.interval_s)
                root = ids.span()
                error = bool(rng.random() < failing[s]) or any(e for _, _, e in calls)
                spans[s].append(_span(trace, root, "", f"GET /{sim.services[s]}", _SERVER, start, total, error))
                at = start + own / 2000.0
                for c, ms, failed in calls:
                    client_id, server_id = ids.span(), ids.span()
                    callee = sim.services[c]
                    spans[s].append(_span(trace, client_id, root, f"POST {callee}", _CLIENT, at, ms + 1.0, failed))
                    spans[c].append(_span(trace, server_id, client_id, f"POST /{callee}/call", _SERVER, at + 0.0005,
                                          ms, failed))
                    at += (ms + 1.0) / 1000.0
        return {"resourceSpans": [
            {"resource": {"attributes": [_attr("service.name", svc), _attr("deployment.environment", "demo")]},
             "scopeSpans": [{"scope": {"name": "aiops.demo"}, "spans": spans[s]}]}
            for s, svc in enumerate(sim.services) if spans[s]
        ]}


class _Ids:
    """Random, non-zero trace and span ids in hex (as OTLP/JSON writes them)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def trace(self) -> str:
        return f"{int(self.rng.integers(1, 2**63)):016x}{int(self.rng.integers(1, 2**63)):016x}"

    def span(self) -> str:
        return f"{int(self.rng.integers(1, 2**63)):016x}"


def _jitter(rng: np.random.Generator) -> float:
    return 1.0 + 0.15 * (2.0 * rng.random() - 1.0)


def _attr(key: str, value: str) -> dict:
    return {"key": key, "value": {"stringValue": value}}


def _span(trace: str, span: str, parent: str, name: str, kind: int, start: float, ms: float, error: bool) -> dict:
    out = {"traceId": trace, "spanId": span, "name": name, "kind": kind,
           "startTimeUnixNano": str(int(start * 1e9)), "endTimeUnixNano": str(int((start + ms / 1000.0) * 1e9)),
           "status": {"code": 2, "message": "demo error burst"} if error else {}}
    if parent:
        out["parentSpanId"] = parent
    return out


def merge(exports: Sequence[dict]) -> dict:
    """Several samples' requests as one (one request per chunk of the backfill)."""
    return {"resourceSpans": [rs for e in exports for rs in e["resourceSpans"]]}


async def post_traces(client: httpx.AsyncClient, traces: DemoTraces, timestamps: Sequence[float]) -> int:
    """Post the samples at `timestamps` to /v1/traces in one request (retrying a 503); returns spans sent."""
    body = merge([traces.export(ts) for ts in timestamps])
    spans = sum(len(ss["spans"]) for rs in body["resourceSpans"] for ss in rs["scopeSpans"])
    posted = await post_retrying(client, "/v1/traces", body, 200, log, "demo: traces not posted", "demo: /v1/traces")
    return spans if posted else 0
