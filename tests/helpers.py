"""Helpers the service-level tests share: waiting on a condition, a settable clock, latency spikes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")


def wait_for(fetch: Callable[[], T], ok: Callable[[T], Any], timeout: float = 30.0) -> T:
    """Poll `fetch` until `ok` holds of its value or `timeout` seconds pass; returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if ok(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


class SettableClock:
    """A clock the test moves by hand (`clock.now = …`)."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def post_latency_spikes(client, services: list[str], start: float) -> None:
    """Ten minutes of calm latency per service from `start`, then one spike at `start + 700`."""
    rng = np.random.default_rng(2)
    points = []
    for svc in services:
        labels = {"service": svc, "cluster": "eu-1"}
        points += [{"name": "latency", "labels": labels, "ts": start + 10 * i, "value": float(0.2 + rng.normal(0, 0.01))}
                   for i in range(60)]
        points.append({"name": "latency", "labels": labels, "ts": start + 700, "value": 2.0})
    assert client.post("/api/v1/metrics", json=points).status_code == 202


def insert_alert(store, *, series_id: int = 0, name: str = "latency", labels: dict | None = None, value: float = 2.0,
                 lower: float = 0.15, upper: float = 0.25, severity: str = "critical", first_seen: float = 1_000.0) -> int:
    """A firing alert (and its series) written straight to the store, as the pipeline would have."""
    from aiops.alerts import fingerprint_of
    from aiops.store import repository
    from ingest.registry import series_key

    labels = labels or {"service": "api", "host": "api-1"}
    key = series_key(name, labels)
    with store.begin() as conn:
        repository.insert_series(conn, [(series_id, key)], first_seen)
        return repository.insert_alert(conn, {
            "fingerprint": fingerprint_of("anomaly", key), "kind": "anomaly", "series_id": series_id, "state": "firing",
            "severity": severity, "summary": f"{name} = {value}", "labels": {"__name__": name, **labels},
            "first_seen": first_seen, "last_seen": first_seen, "updated_at": first_seen, "resolved_at": None, "count": 1,
            "details": {"value": value, "expected": (lower + upper) / 2, "lower": lower, "upper": upper, "score": 0.9,
                        "detector": "ensemble", "explanation": {"detectors": {"level": 0.9}}},
            "silenced_by": None, "flapping": False,
        })
