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
