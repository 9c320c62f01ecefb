"""A simulated fleet for the demo environment: realistic metrics and incidents on a schedule.

Pure computation. Values for all series at one timestamp are computed at once with numpy; noise is
drawn from a generator seeded by (seed, timestamp), so the same instant always gives the same
points, however often and in whatever order it is asked for (the backfill and the live feed agree).
Incidents start only after `origin` (the service's start): history is clean, so detectors are warm
and the first injected incident stands out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["FleetSimulator", "Incident", "INCIDENT_KINDS", "METRICS", "SERVICE_NAMES"]

SERVICE_NAMES = ("checkout", "payments", "search", "catalog", "accounts", "shipping", "inventory", "gateway")
METRICS = (
    "cpu_usage_percent",
    "memory_used_percent",
    "disk_used_percent",
    "http_request_duration_seconds",
    "http_error_ratio",
)
INCIDENT_KINDS = ("cpu_saturation", "latency_regression", "error_burst", "disk_filling")
_CPU, _MEM, _DISK, _LAT, _ERR = range(len(METRICS))


@dataclass(frozen=True)
class Incident:
    kind: str
    service: str
    host: str | None  # None when the whole service is affected
    start: float
    end: float
    description: str


class FleetSimulator:
    """`services` × `hosts_per_service` hosts, each reporting the five `METRICS`."""

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
        if not 1 <= services <= len(SERVICE_NAMES):
            raise ValueError(f"services must be between 1 and {len(SERVICE_NAMES)}, got {services}")
        self.seed = seed
        self.origin = origin
        self.first_incident_after_s = first_incident_after_s
        self.incident_every_s = incident_every_s
        self.incident_duration_s = min(incident_duration_s, incident_every_s)
        self.services = SERVICE_NAMES[:services]
        self.hosts = [(svc, f"{svc}-{i + 1}") for svc in self.services for i in range(hosts_per_service)]
        levels = np.random.default_rng([seed, 0])
        n = len(self.hosts)
        self._cpu_base = levels.uniform(20, 45, n)
        self._mem_base = levels.uniform(40, 70, n)
        self._disk_base = levels.uniform(30, 60, n)
        self._lat_base = levels.uniform(0.08, 0.25, n)
        self._err_base = levels.uniform(0.002, 0.01, n)
        self._labels = [
            {"service": svc, "host": host, "cluster": "demo-1", "env": "demo"} for svc, host in self.hosts
        ]

    # -- schedule ----------------------------------------------------------------------------------

    def _incident(self, k: int) -> Incident:
        start = self.origin + self.first_incident_after_s + k * self.incident_every_s
        kind = INCIDENT_KINDS[k % len(INCIDENT_KINDS)]
        pick = np.random.default_rng([self.seed, 1, k])
        service = self.services[int(pick.integers(len(self.services)))]
        hosts = [h for s, h in self.hosts if s == service]
        host = hosts[int(pick.integers(len(hosts)))]
        text = {
            "cpu_saturation": f"CPU saturation on {host} ({service})",
            "latency_regression": f"latency regression on every host of {service}",
            "error_burst": f"error burst on every host of {service}",
            "disk_filling": f"disk filling up on {host} ({service})",
        }[kind]
        whole_service = kind in ("latency_regression", "error_burst")
        return Incident(kind, service, None if whole_service else host, start, start + self.incident_duration_s, text)

    def incident_at(self, ts: float) -> Incident | None:
        offset = ts - self.origin - self.first_incident_after_s
        if offset < 0:
            return None
        incident = self._incident(int(offset // self.incident_every_s))
        return incident if incident.start <= ts < incident.end else None

    def incidents_between(self, start: float, end: float) -> list[Incident]:
        """Incidents active at some time in [start, end)."""
        first = self.origin + self.first_incident_after_s
        if end <= first:
            return []
        k0 = max(0, int((start - first - self.incident_duration_s) // self.incident_every_s))
        found = []
        k = k0
        while True:
            incident = self._incident(k)
            if incident.start >= end:
                return found
            if incident.end > start:
                found.append(incident)
            k += 1

    # -- values ------------------------------------------------------------------------------------

    def values(self, ts: float) -> np.ndarray:
        """Array (hosts × metrics) of the values at `ts`."""
        rng = np.random.default_rng([self.seed, 2, int(round(ts * 1000))])
        n = len(self.hosts)
        hour = (ts % 86400) / 3600.0
        daily = 0.5 + 0.5 * math.sin(2 * math.pi * (hour - 9.0) / 24.0)  # peaks mid-afternoon UTC
        noise = rng.standard_normal((n, len(METRICS)))
        out = np.empty((n, len(METRICS)))
        out[:, _CPU] = self._cpu_base + 25 * daily + 2.0 * noise[:, _CPU]
        out[:, _MEM] = self._mem_base + 5 * daily + 0.5 * noise[:, _MEM]
        out[:, _DISK] = self._disk_base + 0.1 * noise[:, _DISK]
        out[:, _LAT] = self._lat_base * (1 + 0.3 * daily) * (1 + 0.05 * noise[:, _LAT])
        out[:, _ERR] = self._err_base * (1 + 0.1 * noise[:, _ERR])
        incident = self.incident_at(ts)
        if incident is not None:
            self._apply(incident, ts, out, rng)
        out[:, [_CPU, _MEM, _DISK]] = np.clip(out[:, [_CPU, _MEM, _DISK]], 0, 100)
        out[:, _LAT] = np.maximum(out[:, _LAT], 1e-4)
        out[:, _ERR] = np.clip(out[:, _ERR], 0, 1)
        return out

    def _apply(self, incident: Incident, ts: float, out: np.ndarray, rng: np.random.Generator) -> None:
        hit = np.array([s == incident.service and (incident.host in (None, h)) for s, h in self.hosts])
        k = int(hit.sum())
        if incident.kind == "cpu_saturation":
            out[hit, _CPU] = rng.uniform(95, 99, k)
        elif incident.kind == "latency_regression":
            out[hit, _LAT] *= 4.0
        elif incident.kind == "error_burst":
            out[hit, _ERR] = rng.uniform(0.15, 0.3, k)
        elif incident.kind == "disk_filling":
            out[hit, _DISK] += (ts - incident.start) / 10.0 + 5.0  # +1 point per 10 s, from a 5-point jump

    def sample(self, ts: float) -> list[dict]:
        """One point per metric per host at `ts`, in the ingest API's JSON shape."""
        values = self.values(ts)
        return [
            {"name": metric, "labels": labels if metric != "http_request_duration_seconds" else {**labels, "quantile": "0.95"},
             "ts": ts, "value": float(values[h, m])}
            for h, labels in enumerate(self._labels)
            for m, metric in enumerate(METRICS)
        ]
