"""Which Kafka partition a series goes to: by entity for entity-rule features, else by identity.

An entity rule (`detection.entities`) scores a host's features together, so every feature series of
one host must reach the same worker. A series that feeds a rule — its name is one of the rule's
`features`, it carries every `group_by` label and the rule's selector matches — is keyed by its
*entity*, `["entity", {group_by label: value}]`; any other series by its identity (the record's
table entry, `ingest.kafka_codec.series_entry`). The partition is murmur2(key) mod partitions.

The key names the entity's labels, not the rule: rules grouping by the same labels (two rules over a
host's metrics) keep a host on one partition. A series feeding several rules follows the first; rules
sharing a feature should group by the same labels, else the later rule's entities may be split.

Every process that places or owns series must agree: the api-only producer, the workers' producers
(log counts, RED points) and the workers' alert-ownership check. So they all build this from the same
`detection.entities`; changing those rules moves series between partitions (their state starts cold
there), as changing the partition count does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec

from aiops.matchers import parse_selector
from aiops.settings import EntityRule
from ingest.kafka_codec import partition_hash, series_entry

__all__ = ["SeriesPartitioner", "entity_alert_name"]

_ENTITY_ALERT = "entity:"


def entity_alert_name(rule: str) -> str:
    """The `__name__` of an entity rule's alerts (they are about an entity, not a series)."""
    return _ENTITY_ALERT + rule


class SeriesPartitioner:
    """The partition key of a series (a `ingest.kafka_codec.PartitionKey`) under `rules`."""

    def __init__(self, rules: Sequence[EntityRule] = ()) -> None:
        self.rules = list(rules)
        self._selectors = [parse_selector(r.selector) for r in self.rules]
        self._group_by = {r.name: sorted(r.group_by) for r in self.rules}

    def __call__(self, name: str, labels: Mapping[str, str]) -> bytes:
        for rule, selector in zip(self.rules, self._selectors):  # a loop over entity rules, per new series
            if name in rule.features and all(k in labels for k in rule.group_by) and selector.matches(name, labels):
                return _entity_key(sorted(rule.group_by), labels)
        return series_entry(name, labels)

    def partition(self, name: str, labels: Mapping[str, str], n_partitions: int) -> int:
        """The partition of series `name{labels}`."""
        return partition_hash(self(name, labels)) % n_partitions

    def alert_partition(self, labels: Mapping[str, str], n_partitions: int) -> int:
        """The partition whose owner owns an alert with these labels (`__name__` included): an entity
        alert's is its entity's, any other its series'."""
        rest = dict(labels)
        name = rest.pop("__name__", "")
        group_by = self._group_by.get(name[len(_ENTITY_ALERT):]) if name.startswith(_ENTITY_ALERT) else None
        if group_by is not None and all(k in rest for k in group_by):
            return partition_hash(_entity_key(group_by, rest)) % n_partitions
        return self.partition(name, rest, n_partitions)


def _entity_key(group_by: list[str], labels: Mapping[str, str]) -> bytes:
    return msgspec.json.encode(("entity", {k: labels[k] for k in group_by}))
