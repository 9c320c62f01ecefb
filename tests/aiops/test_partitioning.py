"""Series placement over Kafka partitions: an entity's features together, other series by identity."""

from __future__ import annotations

import numpy as np

from aiops.entities import EntityMonitor
from aiops.partitioning import SeriesPartitioner, entity_alert_name
from aiops.settings import EntityRule
from detectors import MetricBatch
from ingest.kafka_codec import RecordCodec, partition_hash, series_entry
from ingest.registry import SeriesRegistry, series_key

N = 8
RULE = EntityRule(name="hosts", selector='{env="prod"}', group_by=["host"], features=["cpu", "req", "mem"], min_rows=8)
CLUSTERS = EntityRule(name="clusters", group_by=["cluster", "dc"], features=["queue_depth", "workers"], min_rows=8)


def _identity(reg: SeriesRegistry, sid: int) -> tuple[str, dict[str, str]]:
    name, labels = reg.key(int(sid))
    return name, dict(labels)


def _registry(n_hosts: int = 40) -> SeriesRegistry:
    reg = SeriesRegistry()
    for h in range(n_hosts):
        for name in ("cpu", "req", "mem", "disk"):  # disk: not a feature
            reg.intern(series_key(name, {"host": f"h{h}", "env": "prod", "pod": f"p{h % 3}"}))
        reg.intern(series_key("cpu", {"host": f"h{h}", "env": "dev"}))  # the selector does not match
    reg.intern(series_key("cpu", {"env": "prod"}))  # no host label
    for c in range(10):
        for name in ("queue_depth", "workers"):
            reg.intern(series_key(name, {"dc": "x", "cluster": f"c{c}", "node": f"n{c}"}))
    return reg


def test_the_features_of_one_host_share_a_partition_and_hosts_spread():
    reg = _registry()
    partitioner = SeriesPartitioner([RULE, CLUSTERS])
    by_host: dict[str, set[int]] = {}
    for sid in range(len(reg)):
        name, labels = reg.key(sid)
        labels = dict(labels)
        if name in RULE.features and labels.get("env") == "prod" and "host" in labels:
            by_host.setdefault(labels["host"], set()).add(partitioner.partition(name, labels, N))
    assert len(by_host) == 40 and all(len(parts) == 1 for parts in by_host.values())
    assert len({p for parts in by_host.values() for p in parts}) > N // 2  # entities still spread
    clusters = {c: {partitioner.partition(n, {"dc": "x", "cluster": f"c{c}", "node": f"n{c}"}, N)
                    for n in CLUSTERS.features} for c in range(10)}
    assert all(len(parts) == 1 for parts in clusters.values())


def test_series_that_feed_no_rule_keep_identity_partitioning():
    partitioner = SeriesPartitioner([RULE, CLUSTERS])
    for name, labels in [
        ("disk", {"host": "h1", "env": "prod"}),  # not a feature
        ("cpu", {"host": "h1", "env": "dev"}),  # selector does not match
        ("cpu", {"env": "prod"}),  # no group_by label
        ("queue_depth", {"cluster": "c1"}),  # one group_by label missing
    ]:
        assert partitioner(name, labels) == series_entry(name, labels)
        assert partitioner.partition(name, labels, N) == partition_hash(series_entry(name, labels)) % N
    assert SeriesPartitioner()("cpu", {"host": "h1", "env": "prod"}) == series_entry("cpu", {"env": "prod", "host": "h1"})


def test_the_codecs_cached_partitions_agree_with_the_per_series_reference():
    reg = _registry()
    partitioner = SeriesPartitioner([RULE, CLUSTERS])
    codec = RecordCodec(reg, partition_key=partitioner)
    ids = np.random.default_rng(0).permutation(len(reg))
    first = codec.partitions_of(ids[: len(ids) // 2], N)  # half the series seen first, the rest later
    got = np.concatenate([first, codec.partitions_of(ids[len(ids) // 2 :], N)])
    reference = [partitioner.partition(*_identity(reg, sid), N) for sid in ids]
    assert got.tolist() == reference
    plain = RecordCodec(reg).partitions_of(ids, N)  # without entity rules: identity, as before
    assert plain.tolist() == [partition_hash(series_entry(*_identity(reg, sid))) % N for sid in ids]
    assert (plain != got).any()


def test_split_by_partition_puts_a_hosts_features_in_one_part():
    reg = _registry(12)
    codec = RecordCodec(reg, partition_key=SeriesPartitioner([RULE]))
    batch = MetricBatch.from_arrays(np.arange(len(reg)), np.full(len(reg), 1.7e9), np.ones(len(reg)))
    features = [_identity(reg, sid) for sid in range(len(reg))]
    features = {sid for sid, (name, labels) in enumerate(features)
                if name in RULE.features and labels.get("env") == "prod" and "host" in labels}
    hosts_in = {p: {_identity(reg, sid)[1]["host"] for sid in part.series_id.tolist() if sid in features}
                for p, part in codec.split_by_partition(batch, 4).items()}
    seen = [h for hosts in hosts_in.values() for h in hosts]
    assert sorted(seen) == sorted(f"h{h}" for h in range(12))  # each host in exactly one part


def test_an_entity_alert_is_owned_where_its_features_land():
    partitioner = SeriesPartitioner([RULE, CLUSTERS])
    for h in range(30):
        labels = {"host": f"h{h}", "env": "prod"}
        alert_labels = {"__name__": entity_alert_name("hosts"), "host": f"h{h}"}  # as AlertManager stores them
        assert partitioner.alert_partition(alert_labels, N) == partitioner.partition("cpu", labels, N)
        # an anomaly alert on a feature series follows the series, like any other
        assert partitioner.alert_partition({"__name__": "mem", **labels}, N) == partitioner.partition("mem", labels, N)
    unknown = {"__name__": "entity:gone", "host": "h1"}  # a rule since removed: by identity
    assert partitioner.alert_partition(unknown, N) == partition_hash(series_entry("entity:gone", {"host": "h1"})) % N


def test_forgotten_series_leave_their_entity_incomplete_and_unscored():
    reg = SeriesRegistry()
    monitor = EntityMonitor([RULE], reg)
    ids = [reg.intern(series_key(f, {"host": f"h{h}", "env": "prod"})) for h in range(10) for f in RULE.features]
    monitor.observe(MetricBatch.from_arrays(ids, np.full(len(ids), 1.7e9), np.arange(len(ids), dtype=float)))
    group = monitor._groups[0]
    assert np.isfinite(group.latest).all()
    monitor.forget(np.array(ids[:3] + [len(reg) + 5]))  # host h0's series, and an id not seen yet
    assert np.isnan(group.latest[0]).all() and np.isfinite(group.latest[1:]).all()


def test_an_api_only_reload_asks_for_a_restart_when_entity_rules_change(tmp_path, monkeypatch):
    from aiops.config_loader import load_settings
    from aiops.service import Service

    config = tmp_path / "aiops.yaml"
    config.write_text("server:\n  mode: api-only\n")
    monkeypatch.setenv("AIOPS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("AIOPS_STORE__URL", f"sqlite:///{tmp_path / 'aiops.db'}")
    service = Service(load_settings(config), config_path=config)  # not started: reload needs no broker
    config.write_text("server:\n  mode: api-only\ndetection:\n  entities:\n    - name: hosts\n      group_by: [host]\n"
                      "      features: [cpu, req]\n")
    assert service.reload().restart_required == ["detection.entities"]  # the producer keeps the old placement
    assert service.partitioner("cpu", {"host": "h1"}) == series_entry("cpu", {"host": "h1"})
