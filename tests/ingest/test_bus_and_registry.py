"""The bounded in-process bus and the series registry."""

from __future__ import annotations

import threading

import pytest

from ingest import BusFull, InProcessBus, SeriesLimitReached, SeriesRegistry, series_key


def test_bus_is_bounded_and_says_so():
    bus = InProcessBus(max_items=2)
    assert bus.try_publish("t", 1) and bus.try_publish("t", 2)
    assert not bus.try_publish("t", 3)
    with pytest.raises(BusFull):
        bus.publish("t", 3, timeout=0.01)
    assert bus.depth("t") == 2 and bus.capacity("t") == 2
    assert bus.consume("t", max_items=10, timeout=0.1) == [1, 2]
    assert bus.consume("t", max_items=10, timeout=0.01) == []


def test_bus_consume_takes_at_most_max_items_in_order():
    bus = InProcessBus(max_items=10)
    for i in range(5):
        bus.publish("t", i)
    assert bus.consume("t", max_items=3, timeout=0.1) == [0, 1, 2]
    assert bus.consume("t", max_items=3, timeout=0.1) == [3, 4]


def test_bus_publisher_waits_for_room_made_by_a_consumer():
    bus = InProcessBus(max_items=1)
    bus.publish("t", "a")
    threading.Timer(0.05, lambda: bus.consume("t", 1, 0.1)).start()
    bus.publish("t", "b", timeout=2.0)
    assert bus.consume("t", 1, 0.1) == ["b"]


def test_registry_interns_densely_and_canonically():
    reg = SeriesRegistry()
    a = reg.intern(series_key("cpu", {"b": "2", "a": "1"}))
    b = reg.intern(series_key("cpu", {"a": "1", "b": "2"}))
    c = reg.intern(series_key("mem", {}))
    assert (a, b, c) == (0, 0, 1)
    assert reg.labels(0) == {"a": "1", "b": "2"} and reg.name(1) == "mem"
    assert reg.drain_new() == [(0, ("cpu", (("a", "1"), ("b", "2")))), (1, ("mem", ()))]
    assert reg.drain_new() == []


def test_registry_limit_and_requeue_and_load():
    reg = SeriesRegistry(max_series=1)
    reg.intern(("a", ()))
    with pytest.raises(SeriesLimitReached):
        reg.intern(("b", ()))
    new = reg.drain_new()
    reg.requeue_new(new)
    assert reg.drain_new() == new
    restored = SeriesRegistry()
    restored.load([(1, ("b", ())), (0, ("a", ()))])
    assert restored.intern(("b", ())) == 1 and restored.intern(("c", ())) == 2
    with pytest.raises(ValueError, match="not dense"):
        SeriesRegistry().load([(3, ("x", ()))])


def test_registry_interning_is_thread_safe():
    reg = SeriesRegistry()
    keys = [("m", (("i", str(i)),)) for i in range(2000)]
    results: list[list[int]] = [[], []]

    def work(out):
        out.extend(reg.intern(k) for k in keys)

    threads = [threading.Thread(target=work, args=(results[i],)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results[0] == results[1] and sorted(set(results[0])) == list(range(2000))


def test_id_maps_grow_by_doubling_and_keep_their_entries():
    import numpy as np

    from ingest.registry import grow_id_map

    ids = np.array([3, -1, 7], dtype=np.int32)
    assert grow_id_map(ids, 3, -2) is ids  # long enough: untouched
    grown = grow_id_map(ids, 4, -2)
    assert grown.dtype == np.int32 and len(grown) == 64 and grown[:3].tolist() == [3, -1, 7] and (grown[3:] == -2).all()
    assert len(grow_id_map(np.zeros(100, dtype=np.int64), 101, 0)) == 200
    assert len(grow_id_map(np.zeros(100, dtype=np.int64), 500, 0)) == 500
