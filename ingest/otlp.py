"""Decode an OTLP/HTTP `ExportMetricsServiceRequest` (JSON; protobuf via `decode_protobuf`) into a `MetricBatch`.

Spec: OTLP 1.x, "OTLP/HTTP" and "JSON Protobuf Encoding" (opentelemetry.io/docs/specs/otlp;
opentelemetry-proto `docs/specification.md`), data model in `opentelemetry/proto/metrics/v1/metrics.proto`.
The JSON rules that matter here: field names are lowerCamelCase; 64-bit integers (`timeUnixNano`,
`startTimeUnixNano`, `asInt`, `count`, `bucketCounts`, `intValue`) arrive as decimal strings (numbers are
accepted too); enums (`aggregationTemporality`: 1 DELTA, 2 CUMULATIVE) are integers; fields holding the
proto3 default (0, false, empty) may be left out; doubles may be the strings "NaN", "Infinity", "-Infinity".

Mapping (docs/logs-traces.md "OTLP/HTTP ingest: metrics"):

- Series name: the metric name with every character outside `[a-zA-Z0-9_:]` turned into `_`
  (`http.server.duration` → `http_server_duration`), the normalization the Collector's Prometheus exporter
  applies; unit and type suffixes are not appended.
- Labels: resource attributes, then data point attributes (which win on a clash), names made
  Prometheus-safe the same way (`service.name` → `service_name`); `service` is set to the resource's
  `service.name` (the label incidents group by). The instrumentation scope is ignored: it names the
  library that measured, not the thing measured. Values: strings as they are, ints and doubles in
  decimal, bools `true`/`false`, arrays and kvlists as compact JSON, bytes as their base64 text.
- Gauge, and non-monotonic cumulative Sum: each point as it is, at `timeUnixNano` / 1e9.
- Monotonic cumulative Sum: `<name>_rate`, per second, from consecutive points of a series. A value
  lower than the previous one or a changed `startTimeUnixNano` is a reset: the new value is the
  increase since the reset, over the time since `max(start, previous point)` — never a negative rate.
  The first point of a series only primes the state. Delta Sum: `<name>_rate` = value / (time − start).
- Histogram (explicit buckets): `<name>_p50`, `_p95`, `_p99` over the observations of the interval
  (a cumulative histogram is differenced against its previous point, with the same reset rule), by
  linear interpolation inside the bucket as Prometheus' `histogram_quantile` does (the first bucket
  starts at 0 when its upper bound is positive; a rank in the +Inf bucket answers the highest finite
  bound), plus `<name>_count_rate`. An interval without observations gives only the count rate.
- ExponentialHistogram: the same, with bucket `i` of scale `s` spanning (base^i, base^(i+1)],
  base = 2^(2^-s), negatives mirrored, the zero bucket [-zeroThreshold, zeroThreshold]; cumulative
  points of different scales are compared after merging buckets down to the smaller scale.
- Summary: one series per quantile, `<name>_p50` (q = 0.5), `_p99_9` (q = 0.999), and
  `<name>_count_rate` from its (cumulative) count.

A data point without a time or a value, with a non-finite value, a wrong type, or too far in the
future is rejected on its own (counted in `rejectedDataPoints` with a reason); the rest is kept. A
point flagged NO_RECORDED_VALUE (`flags` bit 0) is skipped without being rejected. A body that is
not JSON or not shaped like the request above the data points raises `OtlpBodyError` (400).

Counter and histogram state lives in a bounded dict keyed by output series id. `decode` only reads
it: the changes come back in `DecodedMetrics.pending` and are applied by `commit`, once the batch is
on the bus — so a request refused with 503 and retried by the Collector is rated again, not skipped.

Errors: `OtlpBodyError` (with `.status` 400, 413 or 415) refuses the whole request; everything about
one data point is a `Rejection` in `DecodedMetrics.rejected`, never an exception.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from dataclasses import dataclass, field
from collections.abc import Sequence
from typing import Any

import msgspec
import numpy as np

from detectors.types import MetricBatch
from ingest.points import Rejection
from ingest.registry import SeriesLimitReached, SeriesRegistry, series_key

__all__ = [
    "NO_RESOURCE",
    "DecodedMetrics",
    "ItemRejected",
    "OtlpBodyError",
    "OtlpMetricsDecoder",
    "OtlpResource",
    "decompress",
    "encode_export_response",
    "encode_response_protobuf",
    "encode_status_protobuf",
    "any_text",
    "parse_uint",
    "quantile_name",
    "rejection_message",
]

_DELTA, _CUMULATIVE = 1, 2
_NO_RECORDED_VALUE = 1
_QUANTILES = (0.5, 0.95, 0.99)
_MAX_LABELS = 64
_MAX_NAME = 256
_MAX_REASONS = 5  # reasons quoted in errorMessage; the count covers all
_INVALID_METRIC_CHAR = re.compile(r"[^a-zA-Z0-9_:]")
_INVALID_LABEL_CHAR = re.compile(r"[^a-zA-Z0-9_]")


class OtlpBodyError(Exception):
    """The request as a whole is refused: `status` 400 (bad data), 413 (too large) or 415 (encoding)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ItemRejected(Exception):
    """One item is rejected (a data point, log record or span; or all of a metric or resource): `field`, `reason`."""

    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field_name
        self.reason = reason


def rejection_message(rejected: Sequence[Rejection], total: int, item: str) -> str:
    """A partial success's `errorMessage`, the same for every signal: how many `item`s were rejected and the
    first few reasons ("" when none was), so a Collector's log says what to fix."""
    if not rejected:
        return ""
    shown = "; ".join(f"{item} {r.index}: {r.field}: {r.reason}" for r in rejected[:_MAX_REASONS])
    more = len(rejected) - _MAX_REASONS
    tail = f"; and {more} more" if more > 0 else ""
    return f"{len(rejected)} of {total} {item}s rejected: {shown}{tail}"


@dataclass(slots=True)
class DecodedMetrics:
    batch: MetricBatch
    total: int  # data points in the request
    rejected: list[Rejection] = field(default_factory=list)  # index = ordinal of the data point in the request
    pending: dict[int, tuple] = field(default_factory=dict)  # series id → counter/histogram state, for `commit`

    def error_message(self) -> str:
        """The partial-success `errorMessage`: how many were rejected and the first few reasons."""
        return rejection_message(self.rejected, self.total, "data point")


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """The body with its `Content-Encoding` undone (identity, gzip, deflate), at most `limit` bytes."""
    enc = (encoding or "identity").strip().lower()
    if enc in ("", "identity"):
        return body
    if enc in ("gzip", "x-gzip"):
        wbits = 16 + zlib.MAX_WBITS
    elif enc == "deflate":
        wbits = zlib.MAX_WBITS
    else:
        raise OtlpBodyError(415, f"Content-Encoding {enc!r} is not supported; send gzip, deflate or no compression")
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise OtlpBodyError(400, f"body is not valid {enc}: {exc}") from exc
    if len(out) > limit:
        raise OtlpBodyError(413, f"decompressed body larger than the limit of {limit} bytes (server.max_body_bytes)")
    if not inflater.eof:
        raise OtlpBodyError(400, f"body is truncated {enc}")
    return out


def quantile_name(q: float) -> str:
    """`p50` for 0.5, `p99_9` for 0.999: the suffix of a quantile series."""
    pct = round(q * 100, 6)
    text = f"{pct:g}" if pct != int(pct) else str(int(pct))
    return "p" + text.replace(".", "_")


_QUANTILE_SUFFIXES = tuple("_" + quantile_name(q) for q in _QUANTILES)


class _Out:
    """Columns of one request's output, its rejections and its pending state."""

    __slots__ = ("ids", "ts", "values", "rejected", "pending", "index")

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.ts: list[float] = []
        self.values: list[float] = []
        self.rejected: list[Rejection] = []
        self.pending: dict[int, tuple] = {}
        self.index = 0


class _Point(msgspec.Struct, rename="camel", gc=False):
    """Any kind of data point; fields stay untyped so that a bad value rejects this point only."""

    attributes: msgspec.Raw = msgspec.Raw(b"[]")
    time_unix_nano: Any = None
    start_time_unix_nano: Any = None
    as_double: Any = None
    as_int: Any = None
    flags: Any = None
    count: Any = None
    bucket_counts: Any = None
    explicit_bounds: Any = None
    scale: Any = None
    zero_count: Any = None
    zero_threshold: Any = None
    positive: Any = None
    negative: Any = None
    quantile_values: Any = None


class _Data(msgspec.Struct, rename="camel", gc=False):
    data_points: list[_Point] | None = None
    aggregation_temporality: Any = 0
    is_monotonic: Any = False


class _Metric(msgspec.Struct, rename="camel", gc=False):
    name: Any = None
    gauge: _Data | None = None
    sum: _Data | None = None
    histogram: _Data | None = None
    exponential_histogram: _Data | None = None
    summary: _Data | None = None


class _ScopeMetrics(msgspec.Struct, rename="camel", gc=False):
    metrics: list[_Metric] | None = None


class OtlpResource(msgspec.Struct, rename="camel", gc=False):
    """A resource of any signal's request; its attributes stay raw, to be decoded once per distinct resource."""

    attributes: msgspec.Raw = msgspec.Raw(b"[]")


class _ResourceMetrics(msgspec.Struct, rename="camel", gc=False):
    resource: OtlpResource | None = None
    scope_metrics: list[_ScopeMetrics] | None = None


class _Request(msgspec.Struct, rename="camel", gc=False):
    resource_metrics: list[_ResourceMetrics] | None = None


NO_RESOURCE = OtlpResource()
_CACHE_LIMIT = 1_000_000


class OtlpMetricsDecoder:
    """Turns ExportMetricsServiceRequest JSON bodies into batches, interning series through `registry`.

    The body is decoded by msgspec into typed structs down to the data points, whose fields stay
    untyped so each is checked on its own; a series is looked up by its output name and the raw JSON
    of its resource and point attributes, so labels are only built for a series not seen before.

    max_future_skew_s: points stamped further than this into the future are rejected.
    max_state: counter/histogram states kept; past it the least recently updated are dropped (that
    series then primes again: one rate point is lost).
    """

    def __init__(self, registry: SeriesRegistry, max_future_skew_s: float = 300.0, max_state: int = 200_000) -> None:
        self.registry = registry
        self.max_future_skew_s = max_future_skew_s
        self.max_state = max_state
        self._state: dict[int, tuple] = {}
        self._sids: dict[tuple[str, bytes, bytes], int] = {}  # (name, resource attrs JSON, point attrs JSON) → id
        self._resources: dict[bytes, dict[str, str] | ItemRejected] = {}
        self._metric_names: dict[str, str] = {}
        self._label_names: dict[str, str] = {}
        self._decoder = msgspec.json.Decoder(_Request)

    def decode(self, body: bytes, now: float) -> DecodedMetrics:
        try:
            request = self._decoder.decode(body)
        except msgspec.ValidationError as exc:
            raise OtlpBodyError(400, f"not an ExportMetricsServiceRequest: {exc}") from exc
        except msgspec.DecodeError as exc:
            raise OtlpBodyError(400, f"malformed JSON: {exc}") from exc
        out = _Out()
        for rm in request.resource_metrics or ():
            res_raw = bytes((rm.resource or NO_RESOURCE).attributes)
            base = self._resource_labels(res_raw)
            for sm in rm.scope_metrics or ():
                for metric in sm.metrics or ():
                    self._metric(metric, res_raw, base, now, out)
        batch = MetricBatch.from_arrays(
            np.array(out.ids, dtype=np.int64),
            np.array(out.ts, dtype=np.float64),
            np.array(out.values, dtype=np.float64),
        )
        return DecodedMetrics(batch=batch, total=out.index, rejected=out.rejected, pending=out.pending)

    def decode_protobuf(self, body: bytes, now: float) -> DecodedMetrics:
        """The same from the binary protobuf encoding (`application/x-protobuf`, the Collector's default).

        Parsed with opentelemetry-proto and turned into the OTLP JSON form by protobuf's own
        `MessageToDict` (lowerCamelCase, int64 as strings, enums as integers), then decoded as JSON:
        one mapping for both encodings, at the cost of speed (see docs/logs-traces.md).
        """
        request_type, to_dict, decode_error = _protobuf()
        message = request_type()
        try:
            message.ParseFromString(body)
        except decode_error as exc:
            raise OtlpBodyError(400, f"malformed protobuf ExportMetricsServiceRequest: {exc}") from exc
        return self.decode(msgspec.json.encode(to_dict(message, use_integers_for_enums=True)), now)

    def commit(self, decoded: DecodedMetrics) -> None:
        """Apply the counter/histogram state of a decoded request whose batch was accepted."""
        state = self._state
        for sid, new in decoded.pending.items():
            old = state.pop(sid, None)
            state[sid] = new if old is None or new[1] > old[1] else old  # [1] = time of the point, ns
        while len(state) > self.max_state:
            del state[next(iter(state))]

    # -- one metric ------------------------------------------------------------------------------

    def _metric(self, metric: _Metric, res_raw: bytes, base: dict | ItemRejected, now: float, out: _Out) -> None:
        kind, data = _kind_of(metric)
        points = (data.data_points or []) if data is not None else [None]  # no data: one rejected point
        raw_name = metric.name
        try:
            if isinstance(base, ItemRejected):
                raise base
            if kind is None:
                raise ItemRejected("metric", "none of gauge, sum, histogram, exponentialHistogram, summary")
            if not isinstance(raw_name, str) or not raw_name or len(raw_name) > _MAX_NAME:
                raise ItemRejected("name", f"must be a non-empty string of at most {_MAX_NAME} characters")
            handler = self._handler(kind, data)
        except ItemRejected as bad:
            label = raw_name if isinstance(raw_name, str) else "?"
            for _ in points:
                out.rejected.append(Rejection(out.index, bad.field, f"metric {label!r}: {bad.reason}"))
                out.index += 1
            return
        name = self._metric_name(raw_name)
        horizon = (now + self.max_future_skew_s) * 1e9
        if handler == self._gauge:
            self._gauge_points(name, raw_name, points, res_raw, base, now, horizon, out)
            return
        for point in points:
            self._point(handler, name, raw_name, point, res_raw, base, now, horizon, out)

    def _gauge_points(self, name, raw_name, points, res_raw, base, now, horizon, out) -> None:
        """The common case inline: a finite asDouble at a string time, of a series already known."""
        sids, ids, ts, values = self._sids, out.ids, out.ts, out.values
        for point in points:
            t, v = point.time_unix_nano, point.as_double
            if point.flags is None and type(t) is str and type(v) is float and v - v == 0.0 and t.isdigit():
                tn = int(t)
                sid = sids.get((name, res_raw, bytes(point.attributes)))
                if sid is not None and 0 < tn <= horizon:
                    ids.append(sid)
                    ts.append(tn / 1e9)
                    values.append(v)
                    out.index += 1
                    continue
            self._point(self._gauge, name, raw_name, point, res_raw, base, now, horizon, out)

    def _point(self, handler, name, raw_name, point, res_raw, base, now, horizon, out) -> None:
        try:
            if point.flags is not None and parse_uint(point.flags, "flags") & _NO_RECORDED_VALUE:
                out.index += 1
                return
            t = point.time_unix_nano
            t = parse_uint(t, "timeUnixNano") if t is not None else 0
            if not t:
                raise ItemRejected("timeUnixNano", "required")
            if t > horizon:
                raise ItemRejected("timeUnixNano", f"is {t / 1e9 - now:.0f} s in the future; "
                                           f"at most {self.max_future_skew_s:g} s is allowed")
            start = point.start_time_unix_nano
            start = parse_uint(start, "startTimeUnixNano") if start is not None else 0
            handler(name, (res_raw, bytes(point.attributes), base), point, t, start, out)
        except ItemRejected as bad:
            out.rejected.append(Rejection(out.index, bad.field, f"metric {raw_name!r}: {bad.reason}"))
        except SeriesLimitReached as exc:
            out.rejected.append(Rejection(out.index, "name", str(exc)))
        out.index += 1

    def _handler(self, kind: str, data: _Data):
        if kind == "gauge":
            return self._gauge
        if kind == "summary":
            return self._summary
        temporality = data.aggregation_temporality
        if temporality not in (_DELTA, _CUMULATIVE) or isinstance(temporality, bool):
            raise ItemRejected("aggregationTemporality", f"must be 1 (DELTA) or 2 (CUMULATIVE), got {temporality!r}")
        if kind == "sum":
            if temporality == _DELTA:
                return self._delta_sum
            return self._counter if data.is_monotonic is True else self._gauge
        if kind == "histogram":
            return self._histogram if temporality == _CUMULATIVE else self._delta_histogram
        return self._exp_histogram if temporality == _CUMULATIVE else self._delta_exp_histogram

    # -- number points ---------------------------------------------------------------------------

    def _gauge(self, name, series, point, t, start, out) -> None:
        self._emit(out, name, series, t, _number_value(point))

    def _delta_sum(self, name, series, point, t, start, out) -> None:
        value = _number_value(point)
        if not 0 < start < t:
            raise ItemRejected("startTimeUnixNano", "a delta sum needs a start time before timeUnixNano")
        self._emit(out, name + "_rate", series, t, value / ((t - start) / 1e9))

    def _counter(self, name, series, point, t, start, out, value: float | None = None) -> None:
        if value is None:
            value = _number_value(point)
        sid = self._sid(name + "_rate", series)
        prev = self._prev(out, sid)
        if prev is not None and t <= prev[1]:
            return  # a point already seen (a retry) or older than the last: nothing new
        out.pending[sid] = (start, t, value)
        if prev is None:
            return
        p_start, p_t, p_value = prev
        if value < p_value or (start and p_start and start != p_start):  # reset
            increase, since = value, max(start, p_t) if start < t else p_t
        else:
            increase, since = value - p_value, p_t
        self._put(out, sid, t, increase / ((t - since) / 1e9))

    # -- histograms ------------------------------------------------------------------------------

    def _histogram(self, name, series, point, t, start, out) -> None:
        bounds, counts = _explicit_buckets(point)
        lower, upper = _explicit_edges(bounds)

        def interval(p_bounds, p_counts):
            if p_bounds != bounds:  # bucket layout changed: no common ground, prime again
                return None
            return lower, upper, [c - p for c, p in zip(counts, p_counts)] if len(counts) == len(p_counts) else counts

        self._cumulative_buckets(name, series, point, t, start, out, bounds, counts,
                                 lambda: (lower, upper, counts), interval)

    def _delta_histogram(self, name, series, point, t, start, out) -> None:
        bounds, counts = _explicit_buckets(point)
        self._delta_buckets(name, series, point, t, start, out, *_explicit_edges(bounds), counts)

    def _exp_histogram(self, name, series, point, t, start, out) -> None:
        scale, buckets = _exp_buckets(point)

        def interval(p_scale, p_buckets):  # buckets as {(sign, index): count}, compared after a common downscale
            low = min(scale, p_scale)
            cur, old = _downscale(buckets, scale - low), _downscale(p_buckets, p_scale - low)
            return _exp_edges({k: cur.get(k, 0.0) - old.get(k, 0.0) for k in cur.keys() | old.keys()}, low, point)

        self._cumulative_buckets(name, series, point, t, start, out, scale, buckets,
                                 lambda: _exp_edges(buckets, scale, point), interval)

    def _delta_exp_histogram(self, name, series, point, t, start, out) -> None:
        scale, buckets = _exp_buckets(point)
        self._delta_buckets(name, series, point, t, start, out, *_exp_edges(buckets, scale, point))

    def _cumulative_buckets(self, name, series, point, t, start, out, layout, counts, whole, interval) -> None:
        """Count rate and quantiles of the interval since the previous point of a cumulative histogram.

        `interval(previous layout, previous counts)` gives (lower, upper, counts) of the buckets' increase,
        or None when the layouts share no ground; `whole()` the point's own buckets, used after a reset.
        """
        sid = self._sid(name + "_count_rate", series)
        prev = self._prev(out, sid)
        count = _count(point)
        if prev is not None and t <= prev[1]:
            return
        out.pending[sid] = (start, t, count, layout, counts)
        if prev is None:
            return
        p_start, p_t, p_count, p_layout, p_counts = prev
        found = interval(p_layout, p_counts)
        if found is None:
            return
        lower, upper, diff = found
        if count < p_count or (start and p_start and start != p_start) or (len(diff) and min(diff) < 0):
            (lower, upper, diff), since, dcount = whole(), (max(start, p_t) if start < t else p_t), count
        else:
            since, dcount = p_t, count - p_count
        self._put(out, sid, t, dcount / ((t - since) / 1e9))
        if len(diff):
            self._quantiles(out, name, series, t, lower, upper, diff)

    def _delta_buckets(self, name, series, point, t, start, out, lower, upper, counts) -> None:
        if not 0 < start < t:
            raise ItemRejected("startTimeUnixNano", "a delta histogram needs a start time before timeUnixNano")
        count = _count(point)
        self._emit(out, name + "_count_rate", series, t, count / ((t - start) / 1e9))
        if len(counts):
            self._quantiles(out, name, series, t, lower, upper, counts)

    def _quantiles(self, out, name, series, t, lower, upper, counts) -> None:
        if sum(counts) <= 0:
            return  # no observations in this interval: no quantile to tell
        for suffix, value in zip(_QUANTILE_SUFFIXES, bucket_quantiles(_QUANTILES, lower, upper, counts)):
            self._emit(out, name + suffix, series, t, value)

    # -- summary ---------------------------------------------------------------------------------

    def _summary(self, name, series, point, t, start, out) -> None:
        quantiles = point.quantile_values or []
        if not isinstance(quantiles, list):
            raise ItemRejected("quantileValues", "expected an array")
        values = []
        for qv in quantiles:
            if not isinstance(qv, dict):
                raise ItemRejected("quantileValues", "expected objects {quantile, value}")
            q, v = _double(qv.get("quantile", 0.0), "quantile"), _double(qv.get("value", 0.0), "quantileValues.value")
            if not 0.0 <= q <= 1.0:
                raise ItemRejected("quantile", f"must be within [0, 1], got {q!r}")
            if not math.isfinite(v):
                raise ItemRejected("quantileValues.value", f"must be finite, got {v!r}")
            values.append((q, v))
        count = _count(point)
        self._counter(name + "_count", series, point, t, start, out, value=count)
        for q, v in values:
            self._emit(out, f"{name}_{quantile_name(q)}", series, t, v)

    # -- output and state ------------------------------------------------------------------------

    def _prev(self, out: _Out, sid: int) -> tuple | None:
        found = out.pending.get(sid)
        return found if found is not None else self._state.get(sid)

    def _emit(self, out: _Out, name: str, series: tuple, t: int, value: float) -> None:
        self._put(out, self._sid(name, series), t, value)

    @staticmethod
    def _put(out: _Out, sid: int, t: int, value: float) -> None:
        if not math.isfinite(value):
            raise ItemRejected("value", f"must be finite, got {value!r}")
        out.ids.append(sid)
        out.ts.append(t / 1e9)
        out.values.append(value)

    def _sid(self, name: str, series: tuple[bytes, bytes, dict[str, str]]) -> int:
        """The id of series `name` for (resource attributes JSON, point attributes JSON, resource labels)."""
        res_raw, attrs_raw, base = series
        key = (name, res_raw, attrs_raw)
        sid = self._sids.get(key)
        if sid is not None:
            return sid
        labels = self._labels(msgspec.json.decode(attrs_raw), dict(base))
        if len(labels) > _MAX_LABELS:
            raise ItemRejected("attributes", f"at most {_MAX_LABELS} labels are allowed, got {len(labels)}")
        sid = self.registry.intern(series_key(name, labels))
        if len(self._sids) >= _CACHE_LIMIT:  # bounded: attribute spellings are the client's to choose
            self._sids.clear()
        self._sids[key] = sid
        return sid

    def _resource_labels(self, res_raw: bytes) -> dict[str, str] | ItemRejected:
        found = self._resources.get(res_raw)
        if found is not None:
            return found
        try:
            labels = self._labels(msgspec.json.decode(res_raw))
            if "service_name" in labels:
                labels["service"] = labels["service_name"]  # what incidents group by
        except ItemRejected as bad:
            labels = ItemRejected("resource.attributes", bad.reason)
        if len(self._resources) >= 10_000:
            self._resources.clear()
        self._resources[res_raw] = labels
        return labels

    def _metric_name(self, raw: str) -> str:
        name = self._metric_names.get(raw)
        if name is None:
            name = _INVALID_METRIC_CHAR.sub("_", raw)
            if name[0].isdigit():
                name = "_" + name
            if len(self._metric_names) > 100_000:
                self._metric_names.clear()
            self._metric_names[raw] = name
        return name

    def _label_name(self, raw: str) -> str:
        name = self._label_names.get(raw)
        if name is None:
            name = _INVALID_LABEL_CHAR.sub("_", raw)
            if name[0].isdigit():  # both as the Collector's Prometheus translator (NormalizeLabel) does
                name = "key_" + name
            elif name.startswith("_") and not name.startswith("__"):
                name = "key" + name
            if len(self._label_names) > 100_000:
                self._label_names.clear()
            self._label_names[raw] = name
        return name

    def _labels(self, attributes: Any, into: dict[str, str] | None = None) -> dict[str, str]:
        labels = {} if into is None else into
        if not attributes:
            return labels
        if not isinstance(attributes, list):
            raise ItemRejected("attributes", "expected an array of {key, value}")
        for kv in attributes:
            if not isinstance(kv, dict) or not isinstance(kv.get("key"), str) or not kv["key"]:
                raise ItemRejected("attributes", "expected objects {key: non-empty string, value: AnyValue}")
            try:
                labels[self._label_name(kv["key"])] = any_text(kv.get("value"))
            except (TypeError, ValueError, AttributeError):
                raise ItemRejected("attributes", f"{kv['key']!r}: not an AnyValue") from None
        return labels


# -- JSON field readers ---------------------------------------------------------------------------


def _protobuf():
    """ExportMetricsServiceRequest, MessageToDict and protobuf's DecodeError, imported on first use."""
    from google.protobuf.json_format import MessageToDict
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    return ExportMetricsServiceRequest, MessageToDict, DecodeError


def encode_response_protobuf(rejected: int, message: str) -> bytes:
    """An ExportMetricsServiceResponse in the binary encoding (empty when nothing was rejected)."""
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsPartialSuccess,
        ExportMetricsServiceResponse,
    )

    return encode_export_response(ExportMetricsServiceResponse, ExportMetricsPartialSuccess, "rejected_data_points",
                                  rejected, message)


def encode_export_response(response: type, partial: type, rejected_field: str, rejected: int, message: str) -> bytes:
    """Any signal's Export<Signal>ServiceResponse in the binary encoding, given its generated classes and the
    name of its `rejected_<things>` field: empty when nothing was rejected (a full success), else a partial success."""
    if not rejected and not message:
        return response().SerializeToString()
    return response(partial_success=partial(**{rejected_field: rejected}, error_message=message)).SerializeToString()


def encode_status_protobuf(code: int, message: str) -> bytes:
    """A google.rpc.Status {code = 1 (int32), message = 2 (string)} in the protobuf wire format."""
    text = message.encode()
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _kind_of(metric: _Metric) -> tuple[str | None, _Data | None]:
    for kind, data in (("gauge", metric.gauge), ("sum", metric.sum), ("histogram", metric.histogram),
                       ("exponentialHistogram", metric.exponential_histogram), ("summary", metric.summary)):
        if data is not None:
            return kind, data
    return None, None


def _count(point: _Point) -> float:
    return float(parse_uint(point.count, "count")) if point.count is not None else 0.0


def parse_uint(raw: Any, key: str) -> int:
    """A (u)int64 field: a decimal string per the OTLP JSON rules, or a JSON number."""
    if isinstance(raw, str):
        try:
            return int(raw)
        except ValueError:
            raise ItemRejected(key, f"expected a decimal integer string, got {raw[:40]!r}") from None
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    raise ItemRejected(key, f"expected an integer, got {raw!r}"[:120])


def _double(raw: Any, key: str) -> float:
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return float(raw)
    if isinstance(raw, str):  # "NaN", "Infinity", "-Infinity" per proto3 JSON; also decimal text
        try:
            return float(raw)
        except ValueError:
            pass
    raise ItemRejected(key, f"expected a number, got {raw!r}"[:120])


def _number_value(point: _Point) -> float:
    if point.as_double is not None:
        value = _double(point.as_double, "asDouble")
    elif point.as_int is not None:
        value = float(parse_uint(point.as_int, "asInt"))
    else:
        raise ItemRejected("value", "neither asDouble nor asInt")
    if not math.isfinite(value):
        raise ItemRejected("value", f"must be finite, got {value!r}")
    return value


def any_text(value: Any) -> str:
    """An AnyValue as label text."""
    if not isinstance(value, dict) or not value:
        return ""
    if "stringValue" in value:
        return str(value["stringValue"])
    if "intValue" in value:
        return str(int(value["intValue"])) if _is_int_text(value["intValue"]) else str(value["intValue"])
    if "doubleValue" in value:
        return repr(float(value["doubleValue"])) if not isinstance(value["doubleValue"], str) else value["doubleValue"]
    if "boolValue" in value:
        return "true" if value["boolValue"] is True else "false"
    if "bytesValue" in value:
        return str(value["bytesValue"])
    return json.dumps(_any_plain(value), separators=(",", ":"), sort_keys=False)


def _any_plain(value: Any) -> Any:
    """An AnyValue as a plain JSON value (for arrays and kvlists)."""
    if not isinstance(value, dict) or not value:
        return None
    if "arrayValue" in value:
        return [_any_plain(v) for v in (value["arrayValue"] or {}).get("values") or []]
    if "kvlistValue" in value:
        return {kv.get("key"): _any_plain(kv.get("value")) for kv in (value["kvlistValue"] or {}).get("values") or []}
    if "intValue" in value:
        return int(value["intValue"]) if _is_int_text(value["intValue"]) else value["intValue"]
    if "doubleValue" in value:
        return value["doubleValue"]
    if "boolValue" in value:
        return value["boolValue"]
    return value.get("stringValue", value.get("bytesValue"))


def _is_int_text(raw: Any) -> bool:
    return isinstance(raw, int) or (isinstance(raw, str) and raw.lstrip("-").isdigit())


# -- buckets and quantiles ------------------------------------------------------------------------


def _counts(raw: Any, key: str) -> list[int]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ItemRejected(key, "expected an array of integer strings")
    try:
        counts = [int(c) for c in raw]
    except (TypeError, ValueError):
        raise ItemRejected(key, "expected an array of integer strings") from None
    if counts and min(counts) < 0:
        raise ItemRejected(key, "counts must not be negative")
    return counts


def _explicit_buckets(point: _Point) -> tuple[tuple[float, ...], list[int]]:
    counts = _counts(point.bucket_counts, "bucketCounts")
    raw = point.explicit_bounds or []
    if not isinstance(raw, list):
        raise ItemRejected("explicitBounds", "expected an array of numbers")
    bounds = tuple(raw)
    if not all(type(b) is float for b in bounds):
        bounds = tuple(_double(b, "explicitBounds") for b in raw)
    if len(counts) and len(counts) != len(bounds) + 1:
        raise ItemRejected("bucketCounts", f"expected {len(bounds) + 1} counts for {len(bounds)} bounds, got {len(counts)}")
    if any(not math.isfinite(b) for b in bounds) or any(b >= c for b, c in zip(bounds, bounds[1:])):
        raise ItemRejected("explicitBounds", "must be finite and strictly increasing")
    return bounds, counts


def _explicit_edges(bounds: tuple[float, ...]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Bucket i of an explicit histogram spans (bounds[i-1], bounds[i]]; the first from -inf, the last to +inf."""
    return (-math.inf, *bounds), (*bounds, math.inf)


def _exp_buckets(point: _Point) -> tuple[int, dict[tuple[int, int], float]]:
    scale = point.scale if point.scale is not None else 0
    if not isinstance(scale, int) or isinstance(scale, bool) or not -10 <= scale <= 20:
        raise ItemRejected("scale", f"expected an integer within [-10, 20], got {scale!r}")
    buckets: dict[tuple[int, int], float] = {}
    for sign, key, side in ((1, "positive", point.positive), (-1, "negative", point.negative)):
        side = side or {}
        if not isinstance(side, dict):
            raise ItemRejected(key, "expected an object {offset, bucketCounts}")
        offset = side.get("offset", 0)
        if not isinstance(offset, int) or isinstance(offset, bool):
            raise ItemRejected(key, f"offset: expected an integer, got {offset!r}")
        for k, c in enumerate(_counts(side.get("bucketCounts"), f"{key}.bucketCounts")):
            if c:
                buckets[(sign, offset + k)] = float(c)
    zero = float(parse_uint(point.zero_count, "zeroCount")) if point.zero_count is not None else 0.0
    if zero:
        buckets[(0, 0)] = zero
    return scale, buckets


def _downscale(buckets: dict[tuple[int, int], float], by: int) -> dict[tuple[int, int], float]:
    """Buckets merged `by` scales down: index i becomes i >> by (the OTLP rule for lowering the scale)."""
    if by == 0:
        return buckets
    merged: dict[tuple[int, int], float] = {}
    for (sign, index), c in buckets.items():
        key = (sign, index >> by if sign else 0)
        merged[key] = merged.get(key, 0.0) + c
    return merged


def _exp_edges(buckets: dict[tuple[int, int], float], scale: int, point: _Point) -> tuple[tuple, tuple, tuple]:
    """Edges and counts in ascending order: bucket (+1, i) spans (base^i, base^(i+1)], (-1, i) its mirror."""
    base = 2.0 ** (2.0 ** -scale)
    zt = _double(point.zero_threshold, "zeroThreshold") if point.zero_threshold is not None else 0.0
    rows = []
    for (sign, index), c in buckets.items():
        if sign == 0:
            rows.append((-zt, zt, c))
        elif sign > 0:
            rows.append((base**index, base ** (index + 1), c))
        else:
            rows.append((-(base ** (index + 1)), -(base**index), c))
    rows.sort()
    if not rows:
        return (), (), ()
    lower, upper, counts = zip(*rows)
    return lower, upper, counts


def bucket_quantile(q: float, lower: Sequence[float], upper: Sequence[float], counts: Sequence[float]) -> float:
    """The q-quantile of observations counted in buckets (lower, upper], ascending, by linear interpolation.

    Prometheus' `histogram_quantile` rules for classic buckets: the rank is q × total; the first bucket
    whose cumulative count reaches it holds the answer, interpolated linearly within it; a bucket open
    to -inf starts at 0 if its upper bound is positive (else answers that bound); one open to +inf
    answers its lower bound. NaN when there are no observations.
    """
    return bucket_quantiles((q,), lower, upper, counts)[0]


def bucket_quantiles(
    qs: Sequence[float], lower: Sequence[float], upper: Sequence[float], counts: Sequence[float]
) -> list[float]:
    """`bucket_quantile` for ascending `qs` in one pass over the buckets (plain Python: buckets are few)."""
    total = float(sum(counts))
    if total <= 0:
        return [math.nan] * len(qs)
    answers = []
    b, before, n = 0, 0.0, len(counts)
    for q in qs:
        rank = q * total
        while b < n - 1 and (counts[b] == 0 or before + counts[b] < rank):
            before += counts[b]
            b += 1
        lo, hi = float(lower[b]), float(upper[b])
        if math.isinf(hi):
            answers.append(lo)
            continue
        if math.isinf(lo):
            if hi <= 0:
                answers.append(hi)
                continue
            lo = 0.0
        answers.append(lo + (hi - lo) * (rank - before) / float(counts[b]))
    return answers
