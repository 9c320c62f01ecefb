"""Entity (IsolationForest) rules in `aiops worker` over a real broker (Tansu, the `kafka_bootstrap` fixture).

An api-only service takes `cpu` and `req` of 16 hosts over POST /api/v1/metrics and produces them to a
2-partition metrics topic; two in-process workers split the partitions. Each host's features must
land on one partition (aiops.partitioning), so each worker holds complete rows for its own hosts and
none of the other's. Then one host turns busy while idle — each metric alone in its normal range,
the combination unlike its peers — and the worker owning it stores an entity anomaly and alert.
Entity scoring runs on the workers' wall clock (every 0.5 s, refit every 1 s).
"""

from __future__ import annotations

import time
import uuid

import numpy as np
import pytest
from fastapi.testclient import TestClient

from aiops.api import create_app
from aiops.partitioning import entity_alert_name
from aiops.service import Service, topic_partitions
from aiops.settings import Settings
from aiops.worker import Worker
from helpers import json_value, run_worker, store_rows, wait_for
from ingest.kafka_bus import create_topics

pytestmark = pytest.mark.kafka

PARTITIONS = 2
HOSTS = 16
ODD = "h5"


def _settings(bootstrap: str, store_url: str, tag: str) -> Settings:
    return Settings.model_validate({
        "data_dir": "data",
        "store": {"url": store_url},
        "server": {"mode": "api-only"},  # the API process; the workers run with role="worker" whatever it says
        "kafka": {
            "bootstrap": bootstrap,
            "topics": {"metrics": f"m-{tag}", "logs": f"l-{tag}", "spans": f"s-{tag}", "spans_by_service": f"sbs-{tag}",
                       "dead_letter": f"dead-{tag}", "anomalies": None, "alerts": None},
            "group": f"g-{tag}", "partitions": PARTITIONS, "session_timeout_ms": 6000, "checkpoint_every_s": 1.0,
        },
        "logs": {"enabled": False},
        "traces": {"enabled": False},
        "detection": {
            "default": {"detector": "ewma_zscore", "params": {"warmup": 100000}},  # only entity rules alert here
            "entities": [{"name": "hosts", "group_by": ["host"], "features": ["cpu", "req"], "interval_s": 0.5,
                          "refit_every_s": 1.0, "min_rows": 16, "history": 256, "n_estimators": 50}],
        },
        "forecasting": {"enabled": False},
        "remediation": {"executor": False},
    })


def _round(rng: np.random.Generator, odd: bool = False) -> list[dict]:
    """One point of each host's cpu and req: cpu follows req (5 % of it) except on the odd host when asked,
    busy (48) while idle (110 req/s) — both within the fleet's ranges."""
    now, points = time.time(), []
    for h in range(HOSTS):
        req = rng.uniform(100, 1000)
        cpu = req * 0.05 + rng.normal(0, 1)
        if odd and f"h{h}" == ODD:
            cpu, req = 48.0, 110.0
        points += [{"name": name, "labels": {"host": f"h{h}", "dc": "x"}, "ts": now, "value": float(value)}
                   for name, value in (("cpu", cpu), ("req", req))]
    return points


def _complete_hosts(worker: Worker) -> set[str]:
    """The hosts whose every feature this worker's entity monitor holds."""
    group = worker.pipeline.entities._groups[0]
    rows = group.latest.copy()
    return {host for (host,), e in group.entities.items() if e < len(rows) and np.isfinite(rows[e]).all()}


def _trained(worker: Worker) -> bool:
    detector = worker.pipeline.entities._groups[0].detector
    return detector.ready and len(detector.training_rows()) >= 64


def test_two_workers_each_score_their_own_hosts_whole_and_flag_the_odd_one(kafka_bootstrap, tmp_path):
    tag = uuid.uuid4().hex[:10]
    settings = _settings(kafka_bootstrap, f"sqlite:///{tmp_path / 'aiops.db'}", tag)
    create_topics(kafka_bootstrap, topic_partitions(settings.kafka))
    rng = np.random.default_rng(3)
    a, b = Worker(settings, client_id="a"), Worker(settings, client_id="b")
    stop_a, thread_a = run_worker(a)
    stop_b, thread_b = run_worker(b)
    store = a.service.store
    query = ("SELECT al.labels, s.name, s.labels, an.detector FROM alerts al JOIN anomalies an ON an.alert_id = al.id "
             "JOIN series s ON s.id = an.series_id")

    def post(odd: bool = False) -> None:
        assert client.post("/api/v1/metrics", json=_round(rng, odd)).status_code == 202
        time.sleep(0.2)

    try:
        with TestClient(create_app(Service(settings))) as client:
            wait_for(lambda: post() or (_trained(a), _trained(b)), all, 90)  # both own a partition, both fitted
            hosts_a, hosts_b = _complete_hosts(a), _complete_hosts(b)
            flagged = wait_for(
                lambda: post(odd=True) or [r for r in store_rows(store, query) if json_value(r[0]).get("host") == ODD],
                bool, 60)
            owned = {w: {tp.partition for tp in w._next} for w in (a, b)}  # before either leaves the group
    finally:
        stop_a.set()
        stop_b.set()
        thread_a.join(60)
        thread_b.join(60)
    # every host whole on exactly one worker: its cpu and req came over one partition
    assert hosts_a and hosts_b and not hosts_a & hosts_b
    assert hosts_a | hosts_b == {f"h{h}" for h in range(HOSTS)}
    alert_labels, name, series_labels, detector = flagged[0]
    assert json_value(alert_labels) == {"__name__": entity_alert_name("hosts"), "host": ODD}
    assert name in ("cpu", "req") and json_value(series_labels) == {"host": ODD, "dc": "x"}  # stored under a shared id
    assert detector == "entity_isolation_forest"
    owner, other = (a, b) if ODD in hosts_a else (b, a)
    row = {"labels": json_value(alert_labels)}  # on a rebalance, the entity's owner reloads its alert
    assert owner._owns(row, owned[owner], set()) and not other._owns(row, owned[other], set())
