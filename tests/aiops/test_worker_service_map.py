"""Workers see no spans: they group incidents by the traced map that the API processes save to the store."""

from __future__ import annotations

import json

from aiops.settings import Settings
from aiops.store import StoreEngine, repository
from aiops.topology import ServiceMap
from aiops.traces import CHECKPOINT_NAME
from aiops.worker import SERVICE_MAP_REFRESH_S, Worker
from tests.helpers import SettableClock


def _save_map(store: StoreEngine, edges: list[tuple[str, str]], now: float) -> None:
    traced = ServiceMap()
    for edge in edges:
        traced.observe(edge, calls=5, errors=0, first_seen=now - 60, last_seen=now)
    with store.begin() as conn:
        repository.save_checkpoint(conn, CHECKPOINT_NAME, json.dumps(traced.state_dict()).encode(), now)


def test_a_worker_reads_the_saved_service_map_at_start_and_again_later(store_url):
    clock = SettableClock(1_000_000.0)
    settings = Settings.model_validate({"store": {"url": store_url},
                                        "alerting": {"incidents": {"topology": {"batch": ["db"]}}}})
    store = StoreEngine(store_url)
    store.migrate()
    _save_map(store, [("checkout", "payments")], clock())
    worker = Worker(settings, clock=clock)
    worker.service.start_worker()  # what Worker.start does before it reaches Kafka
    try:
        incidents = worker.service.incidents
        assert incidents.topology() == {"batch": ["db"], "checkout": ["payments"]}

        _save_map(store, [("checkout", "payments"), ("payments", "ledger")], clock())  # an API process saw more
        worker._tick()
        assert "payments" not in incidents.topology()  # not re-read before the refresh period
        clock.now += SERVICE_MAP_REFRESH_S + 1
        worker._tick()
        assert incidents.topology() == {"batch": ["db"], "checkout": ["payments"], "payments": ["ledger"]}
    finally:
        worker.service.stop_worker()
        store.close()
