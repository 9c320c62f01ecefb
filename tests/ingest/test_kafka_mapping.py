"""Other teams' JSON on Kafka read through field paths (ingest.kafka_mapping)."""

from __future__ import annotations

import json

import pytest

from ingest import SeriesRegistry, series_key
from ingest.kafka_codec import RecordError
from ingest.kafka_mapping import JsonMapping


def _mapping(reg: SeriesRegistry, **paths) -> JsonMapping:
    spec = {"name": "metric.name", "labels": "metric.tags", "value": "v", "ts": "time", **paths}
    return JsonMapping(reg, **spec, clock=lambda: 1_700_000_500.0)


def test_one_point_a_list_and_a_nested_list_decode_to_the_same_series():
    reg = SeriesRegistry()
    point = {"metric": {"name": "cpu", "tags": {"host": "a", "core": 3}}, "v": "0.5", "time": 1_700_000_000_000}
    one = _mapping(reg).decode(json.dumps(point).encode())
    many = _mapping(reg).decode(json.dumps([point, {**point, "v": 2, "time": "2023-11-14T22:13:21Z"}]).encode())
    nested = _mapping(reg, points="data").decode(json.dumps({"data": [point]}).encode())
    assert [reg.key(int(s)) for s in many.series_id] == [series_key("cpu", {"host": "a", "core": "3"})] * 2
    assert one.value.tolist() == [0.5] and one.ts.tolist() == [1_700_000_000.0]  # milliseconds read as such
    assert many.value.tolist() == [0.5, 2.0] and many.ts.tolist() == [1_700_000_000.0, 1_700_000_001.0]
    assert nested.series_id.tolist() == one.series_id.tolist()


def test_a_literal_name_no_labels_and_no_time_take_defaults():
    reg = SeriesRegistry()
    batch = JsonMapping(reg, name="=queue_depth", value="items.0.n", clock=lambda: 1_700_000_500.0).decode(b'{"items": [{"n": 7}]}')
    assert reg.key(int(batch.series_id[0])) == series_key("queue_depth", {})
    assert batch.ts.tolist() == [1_700_000_500.0] and batch.value.tolist() == [7.0]


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (b"{not json", "not JSON"),
        (b"[]", "no points"),
        (b'{"metric": {"tags": {}}, "v": 1, "time": 1}', "point 0: name"),
        (b'{"metric": {"name": "cpu"}, "v": "high", "time": 1}', "point 0: value"),
        (b'{"metric": {"name": "cpu"}, "time": 1}', "point 0: value"),
        (b'{"metric": {"name": "cpu", "tags": ["a"]}, "v": 1, "time": 1}', "point 0: labels"),
        (b'{"metric": {"name": "cpu"}, "v": 1, "time": "yesterday"}', "point 0: ts"),
        (b'[{"metric": {"name": "cpu"}, "v": 1, "time": 1}, {"metric": {"name": "cpu"}, "v": 1, "time": -5}]', "timestamps"),
    ],
)
def test_a_message_that_does_not_match_is_a_record_error_naming_what(message, reason):
    with pytest.raises(RecordError, match=reason):
        _mapping(SeriesRegistry()).decode(message)


@pytest.mark.parametrize(
    ("kafka", "message"),
    [
        ({"mappings": [{"topic": "x", "name": "a..b", "value": "v"}]}, "not a dotted path"),
        ({"mappings": [{"topic": "x", "name": "=cpu", "value": "v", "ts": ""}]}, "not a dotted path"),
        ({"mappings": [{"topic": "aiops.metrics", "name": "=cpu", "value": "v"}]}, "one of kafka.topics"),
        ({"mappings": [{"topic": "x", "name": "=cpu", "value": "v"}, {"topic": "x", "name": "n", "value": "v"}]}, "mapped twice"),
        ({"mappings": [{"topic": "x", "name": "n", "value": "v", "unit": "ms"}]}, "unknown field|Extra inputs"),
    ],
)
def test_mapping_settings_are_checked_when_loaded(tmp_path, kafka, message):
    import yaml

    from aiops.config_loader import ConfigError, load_settings

    path = tmp_path / "aiops.yaml"
    path.write_text(yaml.safe_dump({"kafka": kafka}))
    with pytest.raises(ConfigError, match=message):
        load_settings(path, environ={})
