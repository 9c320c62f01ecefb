"""Detector state and forecast history per Kafka partition: a subset of series out of one process and into another.

No broker here: the worker's rebalance hooks call exactly these (tests/aiops/test_worker_kafka.py
drives them over Kafka).
"""

from __future__ import annotations

import numpy as np
import pytest
from kafka import TopicPartition
from sqlalchemy import select

from aiops.detection import DetectionRouter, put_rows, take_rows
from aiops.fencing import PartitionEpochs
from aiops.forecasts import ForecastService
from aiops.partition_state import PartitionState, load_applied, save_applied
from aiops.settings import AlertingSettings, DetectionSettings, ForecastingSettings
from aiops.shared_series import StoreSeries
from aiops.store import repository
from aiops.store.schema import forecasts, series
from detectors import MetricBatch
from ingest import SeriesRegistry, series_key

KEYS = [series_key("cpu", {"host": f"h{i}"}) for i in range(12)]


def _router(registry: SeriesRegistry, default: dict) -> DetectionRouter:
    rules = [{"selector": '{host="h1"}', "detector": "robust_mad", "params": {"window": 16, "warmup": 16}},
             {"selector": "cpu", "detector": "ewma_zscore", "counter": True, "calibrate": True}]
    return DetectionRouter(DetectionSettings.model_validate({"default": default, "rules": rules}), AlertingSettings(), registry)


def _feed(router: DetectionRouter, registry: SeriesRegistry, keys, steps: range, seed: int) -> list:
    rng = np.random.default_rng(seed)
    ids = np.array([registry.intern(k) for k in keys])
    out = []
    for t in steps:
        values = 100 * t + rng.normal(0, 1, len(ids)) + (50 if t == steps[-1] else 0)
        out.append(router.update(MetricBatch.from_arrays(ids, np.full(len(ids), 1e9 + 10.0 * t), values)).scores)
    return out


@pytest.mark.parametrize("default", [{"detector": "ensemble"}, {"detector": "ewma_zscore"}])
def test_a_partitions_state_moves_to_another_router_and_scores_the_same(default):
    a_reg = SeriesRegistry()
    a = _router(a_reg, default)
    _feed(a, a_reg, KEYS, range(200), seed=1)
    share = KEYS[:5]  # one partition's series (h1 goes to another slot)
    ids = np.array([a_reg.get(k) for k in share])
    (state,) = a.series_state([ids])

    b_reg = SeriesRegistry()
    b_reg.intern(series_key("other", {}))  # its ids differ from a's
    b = _router(b_reg, default)
    _feed(b, b_reg, [series_key("other", {})], range(50), seed=2)
    restored = b.load_series_state(state, np.array([b_reg.intern(k) for k in share]))
    assert restored == 2  # the robust_mad slot and the counter's slot

    want = _feed(a, a_reg, share, range(200, 230), seed=3)
    got = _feed(b, b_reg, share, range(200, 230), seed=3)
    for w, g in zip(want, got):
        np.testing.assert_allclose(g.score, w.score)
        np.testing.assert_array_equal(g.ready, w.ready)
    assert got[0].ready.all()  # warm: a fresh router would still be warming up


def test_take_and_put_rows_touch_only_arrays_and_grow_to_n():
    tree = {"version": 1, "state": np.arange(12.0).reshape(6, 2), "inner": {"state": np.arange(6.0)}}
    part = take_rows(tree, np.array([4, 1]))
    assert part["version"] == 1 and part["state"].tolist() == [[8, 9], [2, 3]] and part["inner"]["state"].tolist() == [4, 1]
    current = {"version": 1, "state": np.ones((2, 2)), "inner": {"state": np.ones(2)}}
    merged = put_rows(current, part, np.array([3, 0]), 4)
    assert merged["state"].tolist() == [[2, 3], [1, 1], [0, 0], [8, 9]]
    assert merged["inner"]["state"].tolist() == [1, 1, 0, 4]


def test_partition_checkpoints_round_trip_through_the_store(store):
    reg = SeriesRegistry()
    router = _router(reg, {"detector": "ewma_zscore"})
    _feed(router, reg, KEYS, range(60), seed=4)
    state = PartitionState(router, reg, "g")
    tp0, tp1 = TopicPartition("m", 0), TopicPartition("m", 1)
    state.observe(tp0, np.array([reg.get(k) for k in KEYS[:6]]))
    state.observe(tp1, np.array([reg.get(k) for k in KEYS[6:]]))
    with store.begin() as conn:
        assert state.save(conn, {tp0: 17, tp1: 4}, 1.0) > 0
        epochs = PartitionEpochs("g")
        epochs.claim(conn, [tp0, tp1], 1.0)
        save_applied(conn, epochs, {tp0: 21}, 1.0)

    other_reg = SeriesRegistry()
    other = PartitionState(_router(other_reg, {"detector": "ewma_zscore"}), other_reg, "g")
    with store.begin() as conn:
        assert other.load(conn, [tp0, TopicPartition("m", 5)]) == {tp0: 17}
        assert load_applied(conn, "g", [tp0, tp1]) == {tp0: 21}
    assert sorted(other_reg.key(int(s)) for s in other.series_of(tp0)) == sorted(KEYS[:6])
    assert len(other.series_of(tp1)) == 0


def _forecasts(registry: SeriesRegistry, store, now: float, shared: bool = False) -> ForecastService:
    settings = ForecastingSettings.model_validate({
        "step_s": 60, "history_days": 1800 / 86400, "every_s": 1, "rules": [{
            "selector": '{__name__="disk"}', "threshold": 100, "method": "linear", "window_s": 1200,
            "lead_time_s": 3600, "horizon_s": 3600}]})
    return ForecastService(settings, registry, store, clock=lambda: now,
                           shared_series=StoreSeries(registry) if shared else None)


def test_forecast_history_travels_with_the_partition_and_stored_forecasts_use_store_ids(store):
    disks = [series_key("disk", {"host": f"h{i}"}) for i in range(4)]  # h0, h1 on partition 0; h2, h3 on 1
    reg = SeriesRegistry()
    ids = np.array([reg.intern(k) for k in [*KEYS[:2], *disks]])
    now = 1e9 + 1800
    with store.begin() as conn:  # the store holds other series already: store ids ≠ either process's ids
        repository.insert_series(conn, [(i, series_key("seen", {"i": str(i)})) for i in range(7)], now)
    fc = _forecasts(reg, store, now, shared=True)
    router = _router(reg, {"detector": "ewma_zscore"})
    state = PartitionState(router, reg, "g", forecasts=fc)
    tp0, tp1 = TopicPartition("m", 0), TopicPartition("m", 1)
    state.observe(tp0, ids[[0, 2, 3]])
    state.observe(tp1, ids[[1, 4, 5]])
    for t in range(30):  # disks fill by one point a minute from 60 %: 100 % 11 minutes after `now`
        batch = MetricBatch.from_arrays(ids, np.full(len(ids), 1e9 + 60.0 * t), np.r_[5.0, 5.0, np.full(4, 60.0 + t)])
        router.update(batch)
        fc.observe(batch)
    with store.begin() as conn:
        state.save(conn, {tp0: 30, tp1: 30}, now)
    fc.verdicts.put(fc.run_once())  # not yet taken by the pipeline when the partition goes
    state.forget([tp1])  # revoked: h2 and h3 are no longer forecast here
    assert fc.verdicts.empty()  # the queued verdicts named them
    assert sorted(reg.key(int(s))[1] for s in fc.history.matrix()[0]) == [(("host", "h0"),), (("host", "h1"),)]
    assert sorted(r.key[1] for r in fc.run_once().at_risk) == [(("host", "h0"),), (("host", "h1"),)]

    other_reg = SeriesRegistry()
    for k in reversed(KEYS):  # the new owner's ids differ
        other_reg.intern(k)
    other_fc = _forecasts(other_reg, store, now + 5, shared=True)
    other = PartitionState(_router(other_reg, {"detector": "ewma_zscore"}), other_reg, "g", forecasts=other_fc)
    with store.begin() as conn:
        assert other.load(conn, [tp1]) == {tp1: 30}
    verdicts = other_fc.run_once()  # forecast at once, before any new point: no warm-up
    assert sorted(r.key[1] for r in verdicts.at_risk) == [(("host", "h2"),), (("host", "h3"),)]
    with store.begin() as conn:
        rows = conn.execute(select(series.c.name, series.c.labels, forecasts.c.likely, forecasts.c.series_id,
                                   forecasts.c.created_at)
                            .join(series, series.c.id == forecasts.c.series_id)).fetchall()
    assert sorted((r.name, r.labels["host"]) for r in rows) == [("disk", f"h{i}") for i in range(4)]  # no duplicates
    assert all(r.series_id >= 7 and abs(r.likely - (now + 660)) < 120 for r in rows)
    assert {r.labels["host"]: r.created_at for r in rows} == {"h0": now, "h1": now, "h2": now + 5, "h3": now + 5}
