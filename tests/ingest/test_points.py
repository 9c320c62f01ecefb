"""Decoding of ingest bodies: the fast path, every bad-input case, and per-item rejection."""

from __future__ import annotations

import json

import msgspec
import numpy as np
import pytest

from ingest import BodyError, PointDecoder, SeriesRegistry

NOW = 1_800_000_000.0


@pytest.fixture
def decoder() -> PointDecoder:
    return PointDecoder(SeriesRegistry(max_series=100), max_future_skew_s=300)


def _body(points) -> bytes:
    return msgspec.json.encode({"points": points})


def test_well_formed_batch_becomes_columns_with_interned_series(decoder):
    points = [
        {"name": "cpu", "labels": {"host": "a", "dc": "x"}, "ts": NOW - 10, "value": 1.5},
        {"name": "cpu", "labels": {"dc": "x", "host": "a"}, "ts": NOW - 5, "value": 2.5},  # same series, keys reordered
        {"name": "cpu", "labels": {"host": "b"}, "ts": NOW, "value": 3},
        {"name": "up", "value": 1},  # no labels, no ts
    ]
    out = decoder.decode(_body(points), NOW)
    assert out.total == 4 and out.rejected == []
    assert out.batch.series_id.tolist() == [0, 0, 1, 2]
    assert out.batch.ts.tolist() == [NOW - 10, NOW - 5, NOW, NOW]
    assert out.batch.value.tolist() == [1.5, 2.5, 3.0, 1.0]
    assert decoder.registry.key(0) == ("cpu", (("dc", "x"), ("host", "a")))


def test_bare_array_body_and_millisecond_and_iso_timestamps(decoder):
    body = json.dumps(
        [
            {"name": "m", "ts": (NOW - 60) * 1000, "value": 1},
            {"name": "m", "ts": "2027-01-15T08:00:00Z", "value": 2},
            {"name": "m", "ts": "2027-01-15T09:00:00+01:00", "value": 3},
        ]
    ).encode()
    out = decoder.decode(body, NOW)
    assert out.rejected == []
    assert out.batch.ts.tolist() == [NOW - 60, 1_800_000_000.0, 1_800_000_000.0]  # 2027-01-15T08:00Z == 1.8e9


def test_malformed_json_is_400(decoder):
    with pytest.raises(BodyError) as err:
        decoder.decode(b'{"points": [', NOW)
    assert err.value.status == 400 and "malformed JSON" in err.value.message


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (b'{"pts": []}', "body.points"),
        (b'{"points": {"name": "x"}}', "body.points"),
        (b'"hello"', "body"),
        (b"42", "body"),
    ],
)
def test_wrong_shape_is_422_with_field_path(decoder, body, path):
    with pytest.raises(BodyError) as err:
        decoder.decode(body, NOW)
    assert err.value.status == 422 and err.value.path == path


def test_bad_items_are_rejected_one_by_one_and_the_rest_kept(decoder):
    body = (
        b'{"points": ['
        b'{"name": "ok", "value": 1, "ts": 1799999990},'
        b'{"name": "m", "value": NaN},'
        b'{"name": "m", "value": Infinity},'
        b'{"name": "m", "value": -Infinity},'
        b'{"name": "m", "value": "abc"},'
        b'{"name": "m", "value": true},'
        b'{"name": "m", "value": 1, "ts": 1800000400},'
        b'{"name": "m"},'
        b'{"value": 1},'
        b'{"name": "", "value": 1},'
        b'{"name": "m", "value": 1, "labels": {"a": 1}},'
        b'{"name": "m", "value": 1, "labels": ["a"]},'
        b'{"name": "m", "value": 1, "ts": "yesterday"},'
        b'{"name": "m", "value": 1, "ts": -5},'
        b'17,'
        b'{"name": "prom", "value": "2.5"},'
        b'{"name": "ok", "value": 1e999}'
        b"]}"
    )
    out = decoder.decode(body, NOW)
    by_index = {r.index: (r.field, r.reason) for r in out.rejected}
    assert sorted(by_index) == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 16]
    assert by_index[1][0] == by_index[2][0] == by_index[3][0] == "value"
    assert by_index[4] == ("value", "expected a number, got 'abc'")
    assert by_index[6][0] == "ts" and "future" in by_index[6][1]
    assert by_index[7] == ("value", "field required")
    assert by_index[8] == ("name", "field required")
    assert by_index[10][0] == by_index[11][0] == "labels"
    assert by_index[12][0] == by_index[13][0] == "ts"
    assert by_index[14] == ("", "expected an object, got a number")
    assert out.total == 17
    assert out.batch.value.tolist() == [1.0, 2.5]  # index 0, and the numeric string of index 15
    assert [r.index for r in out.rejected] == sorted(r.index for r in out.rejected)


def test_fast_path_rejects_non_finite_and_future_points_too(decoder):
    points = [{"name": "m", "value": 1.0, "ts": NOW}, {"name": "m", "value": 2.0, "ts": NOW + 3600}]
    body = _body(points).replace(b"1.0", b"1e999")
    out = decoder.decode(body, NOW)
    assert [(r.index, r.field) for r in out.rejected] == [(0, "value"), (1, "ts")]
    assert len(out.batch) == 0


def test_series_limit_rejects_new_series_but_keeps_known_ones():
    decoder = PointDecoder(SeriesRegistry(max_series=2))
    points = [{"name": f"m{i}", "value": 1.0} for i in range(3)] + [{"name": "m0", "value": 2.0}]
    out = decoder.decode(_body(points), NOW)
    assert [(r.index, r.field) for r in out.rejected] == [(2, "name")]
    assert "series limit" in out.rejected[0].reason
    assert out.batch.series_id.tolist() == [0, 1, 0]


def test_decoded_arrays_have_canonical_dtypes(decoder):
    out = decoder.decode(_body([{"name": "m", "value": 1}]), NOW)
    assert out.batch.series_id.dtype == np.int32
    assert out.batch.ts.dtype == np.float64 and out.batch.value.dtype == np.float64
