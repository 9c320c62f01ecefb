"""Reading other teams' JSON telemetry from Kafka: field paths into each message, no bridge needed.

A team that already publishes metrics as JSON describes where things are (`kafka.mappings` in the
settings), e.g. for `{"metric": {"name": "cpu", "tags": {"host": "a"}}, "v": 0.5, "time": 1.7e9}`:

    name: metric.name   labels: metric.tags   value: v   ts: time

A path is dotted keys (`a.b.c`; a list index is a key too: `items.0.value`); a name written `=cpu`
is that literal name. A message is one point, a list of points, or (with `points: path`) an object
holding the list. Values may be numbers or numeric strings; timestamps unix seconds, milliseconds
(above 1e11) or ISO-8601, or absent (time of receipt); label values are turned into strings.

A message that does not match (not JSON, a path missing, a value not a number, bad labels) raises
`RecordError`, so the consumer sends it to the dead-letter topic with the reason, whole: one bad
point spoils its message, which keeps "what was read" equal to "what was committed".
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import msgspec
import numpy as np

from detectors.types import MetricBatch
from ingest.kafka_codec import RecordError
from ingest.points import _labels_problem, _number, _timestamp
from ingest.registry import SeriesLimitReached, SeriesRegistry, series_key

__all__ = ["JsonMapping"]

_MAX_NAME = 256
_MISSING = object()


def _path(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    parts = tuple(text.split("."))
    if any(not p for p in parts):
        raise ValueError(f"bad field path {text!r}: empty key")
    return parts


def _get(doc: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if isinstance(doc, dict):
            doc = doc.get(key, _MISSING)
        elif isinstance(doc, list) and key.isdigit() and int(key) < len(doc):
            doc = doc[int(key)]
        else:
            return _MISSING
        if doc is _MISSING:
            return _MISSING
    return doc


class JsonMapping:
    """Decodes one topic's JSON messages into batches of `registry`'s series (see the module docstring)."""

    def __init__(
        self,
        registry: SeriesRegistry,
        *,
        name: str,
        value: str,
        labels: str | None = None,
        ts: str | None = None,
        points: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = registry
        self._literal_name = name[1:] if name.startswith("=") else None
        self._name = None if self._literal_name is not None else _path(name)
        self._value = _path(value)
        self._labels = _path(labels)
        self._ts = _path(ts)
        self._points = _path(points)
        self._clock = clock

    def decode(self, message: bytes) -> MetricBatch:
        """The points of one message; `RecordError` naming the point and field if it does not match."""
        try:
            doc = msgspec.json.decode(message)
        except (msgspec.DecodeError, TypeError) as exc:
            raise RecordError(f"not JSON: {exc}") from exc
        items = doc if self._points is None else _get(doc, self._points)
        if isinstance(items, dict) and self._points is None:
            items = [items]
        if not isinstance(items, list) or not items:
            raise RecordError(f"no points: expected {'a list at ' + '.'.join(self._points) if self._points else 'an object or a list'}")
        n = len(items)
        sid = np.empty(n, dtype=np.int32)
        ts = np.empty(n)
        value = np.empty(n)
        for i, item in enumerate(items):  # JSON is Python objects already: this loop is the decode
            sid[i], ts[i], value[i] = self._point(i, item)
        missing = np.isnan(ts)
        if missing.any():
            ts[missing] = self._clock()
        ts = np.where(ts > 1e11, ts / 1000.0, ts)
        if not (np.isfinite(value).all() and (ts > 0).all()):
            raise RecordError("values must be finite and timestamps positive")
        return MetricBatch.from_arrays(sid, ts, value)

    def _point(self, i: int, item: Any) -> tuple[int, float, float]:
        name = self._literal_name if self._literal_name is not None else _get(item, self._name)
        if not isinstance(name, str) or not 0 < len(name) <= _MAX_NAME:
            raise RecordError(f"point {i}: name ({'.'.join(self._name or ())}) must be a string of 1 to {_MAX_NAME} characters")
        labels = {} if self._labels is None else _get(item, self._labels)
        if labels is _MISSING or labels is None:
            labels = {}
        if isinstance(labels, dict):
            labels = {str(k): v if isinstance(v, str) else msgspec.json.encode(v).decode() for k, v in labels.items()}
        problem = _labels_problem(labels)
        if problem:
            raise RecordError(f"point {i}: labels: {problem}")
        raw = _get(item, self._value)
        value = None if raw is _MISSING else _number(raw)
        if value is None:
            raise RecordError(f"point {i}: value ({'.'.join(self._value)}) must be a number, got {raw if raw is not _MISSING else 'nothing'!r}"[:300])
        raw_ts = None if self._ts is None else _get(item, self._ts)
        ts = _timestamp(None if raw_ts is _MISSING else raw_ts)
        if ts is None:
            raise RecordError(f"point {i}: ts ({'.'.join(self._ts)}) must be unix seconds or ISO-8601, got {raw_ts!r}"[:300])
        try:
            sid = self.registry.intern(series_key(name, labels))
        except SeriesLimitReached as exc:
            raise RecordError(f"point {i}: {exc}") from exc
        return sid, (math.nan if ts is None else ts), value
