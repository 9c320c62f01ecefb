"""A simulated fleet for the demo environment: realistic metrics and incidents on a schedule.

Pure computation, no I/O: the feeder posts `sample(ts)` to the service's ingest. Values for every
series at one instant are computed at once with numpy, from

    level of the host  +  daily cycle (UTC hour)  +  Gaussian noise  (+ the active incident's effect)

Noise comes from a generator seeded by (seed, timestamp in ms), one row of draws per host in fleet
order, so the same (seed, ts, series) always gives the same value however often and in whatever
order it is asked for: the backfill and the live feed agree, and adding services does not change the
existing hosts. Incidents start only after `origin` (the service's start): the backfilled history is
clean, so detectors are warm and the first injected incident stands out.

The services call each other (`demo_topology`: each calls the next two), so a latency regression
spreads: its callers, directly or through others, slow down too (×2.5) from `PROPAGATION_LAG_S`
after its start. A deploy of the regressing service precedes it by `DEPLOY_LEAD_S`, and a feature
flag change precedes each error burst: the change events an SRE would look for (`changes_between`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["FIXES", "FleetSimulator", "Incident", "INCIDENT_KINDS", "METRICS", "SERVICE_NAMES", "demo_topology",
           "service_names"]

SERVICE_NAMES = (
    "checkout", "payments", "search", "catalog", "accounts", "shipping",
    "inventory", "gateway", "pricing", "reviews", "recommendations", "notifications",
)  # fmt: skip
METRICS = (
    "cpu_usage_percent",
    "memory_used_percent",
    "disk_used_percent",
    "http_request_duration_seconds",
    "http_error_ratio",
)
INCIDENT_KINDS = ("cpu_saturation", "latency_regression", "error_burst", "disk_filling")
_CPU, _MEM, _DISK, _LAT, _ERR = range(len(METRICS))
_WHOLE_SERVICE = frozenset({"latency_regression", "error_burst"})
_CLUSTER = "demo-1"
# What each control action of the demo cures; the others change nothing (a fix that does not work).
FIXES = {
    "restart": frozenset({"latency_regression"}),
    "scale_out": frozenset({"cpu_saturation"}),
    "rotate_logs": frozenset(),
    "restore_log_config": frozenset(),
}

# Range each host's normal level is drawn from, per metric (column order of METRICS).
_LEVEL_LOW = np.array([20.0, 40.0, 30.0, 0.08, 0.002])
_LEVEL_HIGH = np.array([45.0, 70.0, 60.0, 0.25, 0.010])
# Independent random streams derived from the one seed.
_LEVELS, _SCHEDULE, _NOISE = 0, 1, 2
_DISK_FILL_PER_S = 0.1  # percentage points per second while a disk fills (+1 per 10 s)
_DISK_FILL_JUMP = 5.0  # so even the first sample of the incident is unmistakable
PROPAGATION_LAG_S = 10.0  # a regression reaches its callers this much later
_CALLER_SLOWDOWN = 2.5
DEPLOY_LEAD_S = 30.0  # the deploy that causes a latency regression lands this long before it
_FLAG_LEAD_S = 20.0


def demo_topology(services: tuple[str, ...] | list[str]) -> dict[str, list[str]]:
    """Service → the services it calls: each calls the next two, so the last is upstream of two others."""
    return {svc: list(services[k + 1 : k + 3]) for k, svc in enumerate(services) if k + 1 < len(services)}


def _callers(topology: dict[str, list[str]], service: str) -> set[str]:
    """Every service that calls `service`, directly or through others."""
    found: set[str] = set()
    frontier = {service}
    while frontier:
        frontier = {c for c, callees in topology.items() if frontier & set(callees)} - found
        found |= frontier
    return found


@dataclass(frozen=True)
class Incident:
    """One injected fault: what, where and when, and the sentence the feeder logs when it begins."""

    kind: str  # one of INCIDENT_KINDS
    service: str
    host: str | None  # None when the whole service is affected
    start: float  # unix seconds
    end: float
    description: str
    number: int = 0  # its place in the schedule, from 0


def service_names(count: int) -> tuple[str, ...]:
    """The names of the fleet's first `count` services."""
    return tuple(SERVICE_NAMES[k] if k < len(SERVICE_NAMES) else f"service{k + 1}" for k in range(count))


def _daily(ts: float) -> float:
    """0 at 03:00 UTC, 1 at 15:00 UTC: the smooth load curve of a working day."""
    hour = (ts % 86400.0) / 3600.0
    return 0.5 + 0.5 * math.sin(2 * math.pi * (hour - 9.0) / 24.0)


class FleetSimulator:
    """`services` × `hosts_per_service` hosts, each reporting the five `METRICS`.

    Incidents: the first at `origin + first_incident_after_s`, then one every `incident_every_s`,
    each lasting `incident_duration_s`, cycling through `INCIDENT_KINDS`; the service and host of
    each are drawn from the seed. None before `origin`.
    """

    def __init__(
        self,
        *,
        services: int = 3,
        hosts_per_service: int = 4,
        seed: int = 7,
        origin: float,
        first_incident_after_s: float = 20.0,
        incident_every_s: float = 120.0,
        incident_duration_s: float = 60.0,
    ) -> None:
        if services < 1 or hosts_per_service < 1:
            raise ValueError(f"need at least one service and one host each, got {services} × {hosts_per_service}")
        if first_incident_after_s < 0:
            raise ValueError(f"first_incident_after_s must be >= 0, got {first_incident_after_s}")
        if not 0 < incident_duration_s <= incident_every_s:
            raise ValueError(
                "incidents must not overlap: need 0 < incident_duration_s <= incident_every_s, "
                f"got {incident_duration_s} and {incident_every_s}"
            )
        self.seed = seed
        self.origin = origin
        self.first_incident_after_s = first_incident_after_s
        self.incident_every_s = incident_every_s
        self.incident_duration_s = incident_duration_s
        self.services = service_names(services)
        self._healed: dict[int, float] = {}  # incident number → when a control action cured it
        self.topology = demo_topology(self.services)
        self.hosts = tuple((svc, f"{svc}-{i + 1}") for svc in self.services for i in range(hosts_per_service))
        self._service_of = np.repeat(np.arange(services), hosts_per_service)
        self._host_index = {host: h for h, (_, host) in enumerate(self.hosts)}
        draws = np.random.default_rng([seed, _LEVELS]).random((len(self.hosts), len(METRICS)))
        self._levels = _LEVEL_LOW + (_LEVEL_HIGH - _LEVEL_LOW) * draws  # hosts × metrics
        self._names = [metric for _ in self.hosts for metric in METRICS]
        self._labels = [
            {"service": svc, "host": host, "cluster": _CLUSTER, "env": "demo"}
            | ({"quantile": "0.95"} if metric == "http_request_duration_seconds" else {})
            for svc, host in self.hosts
            for metric in METRICS
        ]

    # -- schedule ----------------------------------------------------------------------------------

    def _incident(self, k: int) -> Incident:
        """The k-th incident after origin (k >= 0)."""
        start = self.origin + self.first_incident_after_s + k * self.incident_every_s
        kind = INCIDENT_KINDS[k % len(INCIDENT_KINDS)]
        pick = np.random.default_rng([self.seed, _SCHEDULE, k])
        s = int(pick.integers(len(self.services)))
        service = self.services[s]
        host = None
        if kind not in _WHOLE_SERVICE:
            hosts = [h for (svc, h) in self.hosts if svc == service]
            host = hosts[int(pick.integers(len(hosts)))]
        text = {
            "cpu_saturation": f"CPU saturation on {host} ({service})",
            "latency_regression": f"Latency regression on every host of {service}",
            "error_burst": f"Error burst on every host of {service}",
            "disk_filling": f"Disk filling up on {host} ({service})",
        }[kind]
        return Incident(kind, service, host, start, start + self.incident_duration_s, text, k)

    def incident_at(self, ts: float) -> Incident | None:
        """The incident active at `ts` (start inclusive, end exclusive, cut short when cured), if any."""
        offset = ts - self.origin - self.first_incident_after_s
        if offset < 0:
            return None
        incident = self._incident(int(offset // self.incident_every_s))
        if ts >= self._healed.get(incident.number, incident.end):
            return None
        return incident if incident.start <= ts < incident.end else None

    def control(self, action: str, service: str, host: str | None, ts: float) -> Incident | None:
        """A control action on the fleet at `ts` (restart a service, scale it out, rotate a host's logs…);
        returns the incident it cured, if it cured one. Unknown actions raise ValueError."""
        if action not in FIXES:
            raise ValueError(f"unknown action {action!r}; known: {', '.join(sorted(FIXES))}")
        incident = self.incident_at(ts)
        if incident is None or incident.kind not in FIXES[action] or incident.service != service:
            return None
        if incident.host is not None and host is not None and incident.host != host:
            return None
        self._healed[incident.number] = ts
        return incident

    def incidents_between(self, start: float, end: float) -> list[Incident]:
        """Incidents active at some time in [start, end), in order."""
        first = self.origin + self.first_incident_after_s
        k = max(0, math.floor((start - first - self.incident_duration_s) / self.incident_every_s))
        found = []
        while (incident := self._incident(k)).start < end:
            if incident.end > start:
                found.append(incident)
            k += 1
        return found

    def changes_between(self, start: float, end: float) -> list[dict]:
        """Change events (in the events API's shape) stamped in [start, end), in time order."""
        changes = []
        for incident in self.incidents_between(start, end + DEPLOY_LEAD_S):
            labels = {"service": incident.service, "cluster": _CLUSTER}
            if incident.kind == "latency_regression":
                change = {"kind": "deploy", "title": f"{incident.service} build {incident.number + 1} rolled out",
                          "source": "demo-ci", "ts": incident.start - DEPLOY_LEAD_S}
            elif incident.kind == "error_burst":
                change = {"kind": "feature_flag", "title": f"flag new-{incident.service}-flow turned on",
                          "source": "demo-flags", "ts": incident.start - _FLAG_LEAD_S}
            else:
                continue
            if start <= change["ts"] < end:
                changes.append({**change, "labels": labels})
        return sorted(changes, key=lambda c: c["ts"])

    # -- values ------------------------------------------------------------------------------------

    def values(self, ts: float) -> np.ndarray:
        """Array (hosts × METRICS, rows in `self.hosts` order) of the values at `ts`."""
        ts_ms = round(ts * 1000) % 2**64  # SeedSequence wants non-negative entropy
        rng = np.random.default_rng([self.seed, _NOISE, ts_ms])
        noise = rng.standard_normal((len(self.hosts), len(METRICS)))
        daily = _daily(ts)
        base = self._levels
        out = np.empty_like(base)
        out[:, _CPU] = base[:, _CPU] + 25.0 * daily + 2.0 * noise[:, _CPU]
        out[:, _MEM] = base[:, _MEM] + 5.0 * daily + 0.5 * noise[:, _MEM]
        out[:, _DISK] = base[:, _DISK] + 0.1 * noise[:, _DISK]
        out[:, _LAT] = base[:, _LAT] * (1.0 + 0.3 * daily) * (1.0 + 0.05 * noise[:, _LAT])
        out[:, _ERR] = base[:, _ERR] * (1.0 + 0.1 * noise[:, _ERR])
        incident = self.incident_at(ts)
        if incident is not None:
            self._apply(incident, ts, out, rng)
        out[:, [_CPU, _MEM, _DISK]] = np.clip(out[:, [_CPU, _MEM, _DISK]], 0.0, 100.0)
        out[:, _LAT] = np.maximum(out[:, _LAT], 1e-4)
        out[:, _ERR] = np.clip(out[:, _ERR], 0.0, 1.0)
        return out

    def _apply(self, incident: Incident, ts: float, out: np.ndarray, rng: np.random.Generator) -> None:
        """Overlay the incident's effect, far outside the noise (the demo detector flags ~4 sigma)."""
        if incident.host is None:
            hit = self._service_of == self.services.index(incident.service)
        else:
            hit = np.zeros(len(self.hosts), dtype=bool)
            hit[self._host_index[incident.host]] = True
        k = int(hit.sum())
        if incident.kind == "cpu_saturation":
            out[hit, _CPU] = rng.uniform(95.0, 99.0, k)
        elif incident.kind == "latency_regression":
            out[hit, _LAT] *= 4.0
            if ts >= incident.start + PROPAGATION_LAG_S:
                callers = [self.services.index(c) for c in _callers(self.topology, incident.service)]
                out[np.isin(self._service_of, callers), _LAT] *= _CALLER_SLOWDOWN
        elif incident.kind == "error_burst":
            out[hit, _ERR] = rng.uniform(0.15, 0.3, k)
        elif incident.kind == "disk_filling":
            out[hit, _DISK] += _DISK_FILL_JUMP + _DISK_FILL_PER_S * (ts - incident.start)  # capped by the clip

    def sample(self, ts: float) -> list[dict]:
        """One point per metric per host at `ts`, in the ingest API's JSON shape (fresh dicts)."""
        values = self.values(ts).ravel().tolist()
        return [
            {"name": name, "labels": dict(labels), "ts": ts, "value": value}
            for name, labels, value in zip(self._names, self._labels, values, strict=True)
        ]
