"""Decode a JSON batch of metric points into a columnar `MetricBatch`, item by item.

Accepted bodies: `{"points": [...]}` or a bare `[...]`, each point
`{"name": str, "labels": {str: str}, "ts": number | ISO-8601 string, "value": number}`.
`ts` is unix seconds (values above 1e11 are taken as milliseconds); when absent, the time of receipt.

The common case, a well-formed batch, is decoded by msgspec straight into typed structs and checked
with vectorized numpy, which is what lets one worker accept millions of points per second. Only a
batch with a bad item takes the slow path, which checks each item on its own so that the valid items
of a batch are kept and each bad one is reported with its index, field and reason.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import msgspec
import numpy as np

from detectors.types import MetricBatch
from ingest.registry import SeriesLimitReached, SeriesRegistry, series_key

__all__ = ["BodyError", "DecodedPoints", "Rejection", "PointDecoder"]

_MS_THRESHOLD = 1e11  # unix seconds reach 1e11 in the year 5138; larger values are milliseconds
_MAX_NAME = 256
_MAX_LABELS = 64


class BodyError(Exception):
    """The body as a whole cannot be read: `status` is 400 (not JSON) or 422 (wrong shape)."""

    def __init__(self, status: int, message: str, path: str = "body") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.path = path


@dataclass(frozen=True, slots=True)
class Rejection:
    index: int
    field: str
    reason: str


@dataclass(slots=True)
class DecodedPoints:
    batch: MetricBatch
    total: int
    rejected: list[Rejection] = field(default_factory=list)


class _Point(msgspec.Struct, gc=False):
    name: str
    value: float
    labels: msgspec.Raw = msgspec.Raw(b"{}")
    ts: float = math.nan


class _Envelope(msgspec.Struct, gc=False):
    points: list[_Point]


class PointDecoder:
    """Turns request bodies into batches, interning series through `registry`.

    max_future_skew_s: points stamped further than this into the future are rejected.
    """

    def __init__(self, registry: SeriesRegistry, max_future_skew_s: float = 300.0) -> None:
        self.registry = registry
        self.max_future_skew_s = max_future_skew_s
        self._fast = msgspec.json.Decoder(_Envelope | list[_Point])
        self._raw_ids: dict[str, dict[bytes, int]] = {}  # name → raw labels JSON → id
        self._cached = 0

    def decode(self, body: bytes, now: float) -> DecodedPoints:
        try:
            parsed = self._fast.decode(body)
        except msgspec.ValidationError:
            return self._decode_lenient(self._parse_any(body), now)
        except msgspec.DecodeError:
            return self._decode_lenient(self._parse_any(body), now)
        points = parsed.points if isinstance(parsed, _Envelope) else parsed
        return self._decode_fast(points, now)

    # -- fast path -------------------------------------------------------------------------------

    def _decode_fast(self, points: list[_Point], now: float) -> DecodedPoints:
        n = len(points)
        rejected: list[Rejection] = []
        by_name = self._raw_ids
        empty: dict[bytes, int] = {}
        ids = np.array([by_name.get(p.name, empty).get(bytes(p.labels), -1) for p in points], dtype=np.int64)
        for i in np.flatnonzero(ids < 0):  # series not seen in this form before
            p = points[i]
            ids[i] = self._intern_raw(int(i), p.name, p.labels, rejected)
        value = np.array([p.value for p in points], dtype=np.float64)
        ts = np.array([p.ts for p in points], dtype=np.float64)
        return self._finish(ids, ts, value, n, now, rejected)

    def _intern_raw(self, index: int, name: str, raw: msgspec.Raw, rejected: list[Rejection]) -> int:
        labels = msgspec.json.decode(raw)
        sid = self._intern(index, name, labels, rejected)
        if sid >= 0:
            self._cached += 1
            if self._cached > 1_000_000:  # bounded: spellings of labels are the client's to choose
                self._raw_ids.clear()
                self._cached = 0
            self._raw_ids.setdefault(name, {})[bytes(raw)] = sid
        return sid

    # -- slow path: item by item -----------------------------------------------------------------

    @staticmethod
    def _parse_any(body: bytes) -> Any:
        try:
            return msgspec.json.decode(body)
        except msgspec.DecodeError as exc:
            try:  # Python's parser also reads NaN and Infinity, which we then reject per item
                return json.loads(body)
            except (ValueError, UnicodeDecodeError):
                raise BodyError(400, f"malformed JSON: {exc}") from exc

    def _decode_lenient(self, doc: Any, now: float) -> DecodedPoints:
        if isinstance(doc, dict):
            if "points" not in doc:
                raise BodyError(422, "field required: an object body must have a `points` array", "body.points")
            items = doc["points"]
            if not isinstance(items, list):
                raise BodyError(422, f"expected an array, got {_kind(items)}", "body.points")
        elif isinstance(doc, list):
            items = doc
        else:
            raise BodyError(422, f"expected an object with `points` or an array, got {_kind(doc)}", "body")
        n = len(items)
        rejected: list[Rejection] = []
        ids = np.full(n, -1, dtype=np.int64)
        ts = np.full(n, np.nan)
        value = np.zeros(n)
        for i, item in enumerate(items):
            parsed = _check_item(i, item, rejected)
            if parsed is None:
                continue
            name, labels, ts[i], value[i] = parsed
            ids[i] = self._intern(i, name, labels, rejected)
        return self._finish(ids, ts, value, n, now, rejected)

    def _intern(self, index: int, name: str, labels: Any, rejected: list[Rejection]) -> int:
        if not name or len(name) > _MAX_NAME:
            rejected.append(Rejection(index, "name", f"must be a non-empty string of at most {_MAX_NAME} characters"))
            return -1
        problem = _labels_problem(labels)
        if problem:
            rejected.append(Rejection(index, "labels", problem))
            return -1
        try:
            return self.registry.intern(series_key(name, labels))
        except SeriesLimitReached as exc:
            rejected.append(Rejection(index, "name", str(exc)))
            return -1

    # -- shared: vectorized checks of values and timestamps --------------------------------------

    def _finish(
        self, ids: np.ndarray, ts: np.ndarray, value: np.ndarray, n: int, now: float, rejected: list[Rejection]
    ) -> DecodedPoints:
        ts = np.where(np.isnan(ts), now, ts)
        ts = np.where(ts > _MS_THRESHOLD, ts / 1000.0, ts)
        ok = ids >= 0
        bad_value = ok & ~np.isfinite(value)
        bad_ts = ok & ~bad_value & ~(np.isfinite(ts) & (ts > 0))
        future = ok & ~bad_value & ~bad_ts & (ts > now + self.max_future_skew_s)
        if bad_value.any() or bad_ts.any() or future.any():
            for i in np.flatnonzero(bad_value):
                rejected.append(Rejection(int(i), "value", f"must be a finite number, got {value[i]!r}"))
            for i in np.flatnonzero(bad_ts):
                rejected.append(Rejection(int(i), "ts", "must be a positive unix time"))
            for i in np.flatnonzero(future):
                rejected.append(
                    Rejection(
                        int(i), "ts", f"is {ts[i] - now:.0f} s in the future; at most {self.max_future_skew_s:g} s is allowed"
                    )
                )
            ok &= ~(bad_value | bad_ts | future)
        if rejected:
            rejected.sort(key=lambda r: r.index)
        if ok.all():
            batch = MetricBatch.from_arrays(ids, ts, value)
        else:
            batch = MetricBatch.from_arrays(ids[ok], ts[ok], value[ok])
        return DecodedPoints(batch=batch, total=n, rejected=rejected)


def _check_item(index: int, item: Any, rejected: list[Rejection]) -> tuple[str, Any, float, float] | None:
    """Name, labels, ts and value of one item, or None after recording why it is rejected."""
    if not isinstance(item, dict):
        rejected.append(Rejection(index, "", f"expected an object, got {_kind(item)}"))
        return None
    name = item.get("name")
    if not isinstance(name, str):
        rejected.append(Rejection(index, "name", "field required" if name is None else f"expected a string, got {_kind(name)}"))
        return None
    labels = item.get("labels", {})
    if labels is None:
        labels = {}
    if "value" not in item:
        rejected.append(Rejection(index, "value", "field required"))
        return None
    value = _number(item["value"])
    if value is None:
        rejected.append(Rejection(index, "value", f"expected a number, got {item['value']!r}"[:200]))
        return None
    raw_ts = item.get("ts")
    ts = _timestamp(raw_ts)
    if ts is None:
        rejected.append(Rejection(index, "ts", f"expected unix seconds or an ISO-8601 time, got {raw_ts!r}"[:200]))
        return None
    return name, labels, ts, value


def _number(raw: Any) -> float | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, (int, float)):
        return float(raw)
    if isinstance(raw, str):  # Prometheus' JSON writes sample values as strings
        try:
            return float(raw)
        except ValueError:
            return None
    return None


def _timestamp(raw: Any) -> float | None:
    if raw is None:
        return math.nan  # filled with the time of receipt
    if isinstance(raw, bool):
        return None
    if isinstance(raw, (int, float)):
        return float(raw)
    if isinstance(raw, str):
        try:
            parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        return parsed.timestamp()
    return None


def _labels_problem(labels: Any) -> str | None:
    if not isinstance(labels, dict):
        return f"expected an object of string values, got {_kind(labels)}"
    if len(labels) > _MAX_LABELS:
        return f"at most {_MAX_LABELS} labels are allowed, got {len(labels)}"
    for key, val in labels.items():
        if not isinstance(val, str):
            return f"label {key!r}: expected a string, got {_kind(val)}"
        if not key:
            return "label names must not be empty"
    return None


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )
