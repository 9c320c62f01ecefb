"""Helpers the service-level tests share: waiting on a condition, a settable clock, latency spikes, the demo
fleet with a regression on search, a service on SQLite, and what the OTLP/HTTP route tests send."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")

OTLP_JSON = {"Content-Type": "application/json"}
OTLP_PROTOBUF = {"Content-Type": "application/x-protobuf"}


def make_service(tmp_path, **env: str):
    """A service on an SQLite store in `tmp_path`, ewma_zscore by default (quick to warm up); `env` overrides."""
    from aiops.config_loader import load_settings
    from aiops.service import Service

    environ = {
        "AIOPS_DATA_DIR": str(tmp_path),
        "AIOPS_STORE__URL": f"sqlite:///{tmp_path / 'aiops.db'}",
        "AIOPS_DETECTION__DEFAULT__DETECTOR": "ewma_zscore",
        **env,
    }
    return Service(load_settings(None, environ=environ))


def ns(t: float) -> str:
    """Seconds as OTLP JSON's int64 nanoseconds (a decimal string)."""
    return str(int(t * 1e9))


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


def fleet_with_search_regression():
    """The demo fleet with incidents 15 min apart, on a seed whose second one is a latency regression on search.

    The latency scenarios (metrics with a configured map, traces without one) need the regression on the
    service the two others call.
    """
    from aiops.demo.simulator import FleetSimulator

    origin = 1_795_000_000.0  # 2026-11-18 08:26 UTC: in the past, as the ingest wants
    for seed in range(200):
        sim = FleetSimulator(seed=seed, origin=origin, first_incident_after_s=20, incident_every_s=900,
                             incident_duration_s=60)
        if sim.incidents_between(origin, origin + 1000)[1].service == "search":
            return sim
    raise AssertionError("no seed puts the regression on search")


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


def store_rows(store, sql: str) -> list:
    """Rows of a raw SQL query against a StoreEngine."""
    from sqlalchemy import text

    with store.begin() as conn:
        return conn.execute(text(sql)).fetchall()


def json_value(value):
    """A JSON column's value: SQLite hands back text, PostgreSQL the decoded object."""
    import json

    return json.loads(value) if isinstance(value, str) else value


def run_worker(worker):
    """Start an aiops worker and run it in a thread; set the returned event to stop it, then join the thread."""
    import threading

    worker.start()
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    return stop, thread


def read_topic(bootstrap: str, topic: str, at_least: int = 1, timeout_s: float = 30.0, group: str | None = None) -> list:
    """Records of a topic, read from the earliest offset until `at_least` came (a fresh group unless named)."""
    import uuid

    from kafka import KafkaConsumer

    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False,
                             group_id=group or f"reader-{uuid.uuid4().hex[:8]}", session_timeout_ms=6000,
                             heartbeat_interval_ms=2000)
    got: list = []
    try:
        wait_for(lambda: got.extend(r for rs in consumer.poll(timeout_ms=500).values() for r in rs) or len(got),
                 lambda n: n >= at_least, timeout_s)
    finally:
        consumer.close()
    return got
