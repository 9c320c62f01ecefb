"""Traces to RED metrics and a service map, vectorized over spans.

Spans become, per (service, operation) and per interval, a request rate, an error ratio and latency
quantiles (p50, p95, p99) — the series the metric detectors watch — and, from parent/child spans that
cross services, the edges of the service dependency map: per interval their call rate, error ratio and
p95 latency (series too, so a slow dependency shows on the edge into it), and running totals. A
caller edge seen for the first time is reported once, as an event.

Which spans count in a (service, operation)'s RED figures: those `SpanBatch.counted` marks (the
decoder marks SERVER and CONSUMER spans and root spans, the requests a service serves); every span
still resolves parents, so a CLIENT span links its service to the SERVER span it called.

Everything is computed with numpy over the batch: spans are grouped by a lexsort on (group, duration)
and quantiles are read at computed positions inside each group, so the cost is a sort, not a loop
over services or operations. A span's parent may arrive in an earlier batch: the aggregator keeps the
service of recent span ids (bounded, oldest forgotten first) to resolve it; or in a later one (a child
ends, and is exported, first): the span then waits for it a little (`ParentIndex`).
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

__all__ = ["EdgePoints", "EdgeStats", "RedAggregator", "RedPoints", "SpanBatch", "quantiles_by_group"]

QUANTILES = (0.5, 0.95, 0.99)


@dataclass(frozen=True)
class SpanBatch:
    """Spans as parallel arrays; services and operations as names (interned by the aggregator)."""

    span_id: np.ndarray  # object or bytes: ids as given (hex strings in OTLP/JSON)
    parent_id: np.ndarray  # "" (or None) for a root span
    service: np.ndarray  # str
    operation: np.ndarray  # str
    end_s: np.ndarray  # float64, unix seconds
    duration_ms: np.ndarray  # float64
    error: np.ndarray  # bool
    counted: np.ndarray | None = None  # bool: spans that count in RED figures; None: all of them
    trace_id: np.ndarray | None = None  # str (hex): what raw spans are partitioned by on Kafka (ingest.kafka_spans)
    caller: np.ndarray | None = None  # str: the parent's service, resolved upstream ("" none); None: resolve here

    def __len__(self) -> int:
        return len(self.end_s)

    @staticmethod
    def concat(batches: list[SpanBatch]) -> SpanBatch:
        """One batch of several, in order; an optional column is kept only if every batch has it."""
        def joined(name: str) -> np.ndarray | None:
            columns = [getattr(b, name) for b in batches]
            return None if any(c is None for c in columns) else np.concatenate(columns)

        return SpanBatch(*(joined(name) for name in (
            "span_id", "parent_id", "service", "operation", "end_s", "duration_ms", "error", "counted", "trace_id",
            "caller")))

    def with_callers(self, caller: np.ndarray) -> SpanBatch:
        return dataclasses.replace(self, caller=np.asarray(caller, dtype=object))

    def take(self, idx: np.ndarray) -> SpanBatch:
        """The spans at `idx` (indices or a boolean mask), every column kept."""
        def pick(column: np.ndarray | None) -> np.ndarray | None:
            return None if column is None else column[idx]

        return SpanBatch(self.span_id[idx], self.parent_id[idx], self.service[idx], self.operation[idx],
                         self.end_s[idx], self.duration_ms[idx], self.error[idx], pick(self.counted),
                         pick(self.trace_id), pick(self.caller))


@dataclass(frozen=True)
class EdgePoints:
    """Closed intervals' figures per caller → callee edge, one row per (edge, interval).

    Measured on the callee's side (the child span): what the caller waited for, as the callee served it.
    """

    caller: list[str]
    callee: list[str]
    interval_end: np.ndarray  # float64
    rate: np.ndarray  # calls per second
    error_ratio: np.ndarray
    p95_ms: np.ndarray

    def __len__(self) -> int:
        return len(self.rate)


_NO_EDGES = EdgePoints([], [], np.empty(0), np.empty(0), np.empty(0), np.empty(0))


@dataclass(frozen=True)
class RedPoints:
    """Closed intervals' figures, one row per (service, operation, interval)."""

    service: list[str]
    operation: list[str]
    interval_end: np.ndarray  # float64: the interval's end (the point's timestamp)
    rate: np.ndarray  # requests per second
    error_ratio: np.ndarray
    p50_ms: np.ndarray
    p95_ms: np.ndarray
    p99_ms: np.ndarray
    edges: EdgePoints = _NO_EDGES  # the same intervals' per-edge figures

    def __len__(self) -> int:
        return len(self.rate)


@dataclass
class EdgeStats:
    calls: int = 0
    errors: int = 0
    p95_ms: float = float("nan")
    first_seen: float = float("nan")
    last_seen: float = float("nan")

    @property
    def error_ratio(self) -> float:
        return self.errors / self.calls if self.calls else 0.0


def quantiles_by_group(group: np.ndarray, values: np.ndarray, qs: tuple[float, ...] = QUANTILES
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(groups, counts, quantiles[len(groups), len(qs)]) of `values` per `group` (non-negative ints).

    Nearest-rank on the sorted values of each group (the value at position ⌈q·n⌉ − 1), as latency
    SLOs count requests: p95 is a latency that 95% of requests did not exceed.
    """
    order = np.lexsort((values, group))
    g, v = group[order], values[order]
    groups, start, counts = np.unique(g, return_index=True, return_counts=True)
    ranks = np.ceil(np.asarray(qs)[None, :] * counts[:, None]).astype(np.int64) - 1
    pos = start[:, None] + np.clip(ranks, 0, (counts - 1)[:, None])
    return groups, counts, v[pos]


class ParentIndex:
    """The service of recent span ids (bounded, oldest forgotten first), to name each span's caller.

    A span's parent may come in an earlier batch, or in a later one: exporters send a span when it
    ends, and a child ends before its parent, so a callee's SERVER span often comes before the CLIENT
    span that called it. A span whose parent has not come yet is held (`resolve`) until it does or the
    spans seen have moved `wait_s` past its end; then it goes on with no caller (a root's caller, or a
    caller outside the traced fleet). Held spans are bounded by `max_ids` too (oldest let go first).
    """

    def __init__(self, max_ids: int = 200_000, wait_s: float = 0.0) -> None:
        self.max_ids = max_ids
        self.wait_s = wait_s
        self._service: OrderedDict = OrderedDict()
        self._waiting: SpanBatch | None = None  # spans whose parent has not come yet
        self._watermark = float("-inf")

    def __len__(self) -> int:
        return len(self._service)

    def __contains__(self, span_id: object) -> bool:
        return span_id in self._service

    @property
    def waiting(self) -> int:
        return 0 if self._waiting is None else len(self._waiting)

    def callers(self, spans: SpanBatch) -> np.ndarray:
        """Per span, its parent's service ("" for a root or an unknown parent); remembers the batch's ids."""
        for sid, svc in zip(spans.span_id.tolist(), spans.service.tolist()):  # ids → service: a dict, bounded
            self._service[sid] = svc
        while len(self._service) > self.max_ids:
            self._service.popitem(last=False)
        return self._lookup(spans.parent_id)

    def _lookup(self, parent_id: np.ndarray) -> np.ndarray:
        get = self._service.get
        return np.array([get(p, "") if p else "" for p in parent_id.tolist()], dtype=object)

    def resolve(self, spans: SpanBatch) -> SpanBatch:
        """The spans ready to aggregate, with their `caller`: this batch's and held ones whose parent has
        come or whose wait is over; this batch's spans whose parent has not come are held instead."""
        if len(spans):
            self._watermark = max(self._watermark, float(spans.end_s.max()))
        callers = self.callers(spans)
        if self._waiting is not None:  # held spans first: their parents may have come in this batch
            callers = np.concatenate([self._lookup(self._waiting.parent_id), callers])
            spans, self._waiting = SpanBatch.concat([self._waiting, spans]), None
        orphan = (spans.parent_id != "") & (callers == "")
        hold = orphan & (spans.end_s > self._watermark - self.wait_s)
        if hold.sum() > self.max_ids:  # bounded: the oldest go on without their caller
            hold[np.flatnonzero(hold)[: int(hold.sum()) - self.max_ids]] = False
        if hold.any():
            self._waiting = spans.take(hold)
            spans, callers = spans.take(~hold), callers[~hold]
        return spans.with_callers(callers)

    def release(self) -> SpanBatch | None:
        """Every held span, with no caller (spans stopped coming, or at shutdown)."""
        waiting, self._waiting = self._waiting, None
        return None if waiting is None else waiting.with_callers(np.full(len(waiting), "", dtype=object))


@dataclass
class RedAggregator:
    """Accumulates spans into `interval_s` buckets; `add` returns the intervals that have closed.

    An interval closes once a span ends `grace_s` past its end (late spans up to then still count);
    a span of an interval already closed is dropped and counted in `late` (its figures were emitted).
    Callers come from `spans.caller` when resolved upstream, else from the aggregator's `ParentIndex`
    (which holds a span whose parent has not come for up to `parent_wait_s`, at most `grace_s`, so the
    span still lands in an open interval).
    """

    interval_s: float = 60.0
    grace_s: float = 30.0
    max_span_ids: int = 200_000
    parent_wait_s: float = 0.0  # a span whose parent has not come waits this long (at most grace_s): ParentIndex
    _names: dict[tuple[str, str], int] = field(default_factory=dict)
    _keys: list[tuple[str, str]] = field(default_factory=list)
    _open: dict[float, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = field(default_factory=dict)
    _parents: ParentIndex | None = None
    _watermark: float = float("-inf")
    closed_before: float = float("-inf")  # intervals ending at or before this are closed
    late: int = 0  # spans dropped: their interval had closed
    _edge_ids: dict[tuple[str, str], int] = field(default_factory=dict)
    _edge_keys: list[tuple[str, str]] = field(default_factory=list)
    _open_edges: dict[float, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = field(default_factory=dict)
    edges: dict[tuple[str, str], EdgeStats] = field(default_factory=dict)

    def add(self, spans: SpanBatch, watermark: float | None = None) -> tuple[RedPoints | None, list[tuple[str, str]]]:
        """Fold spans in; returns the closed intervals' RED points with their edge figures (or None) and
        caller→callee edges seen for the first time.

        Intervals close by the latest span end seen, or by `watermark` when given: the time every input
        has reached (spans merged from several streams, aiops.partition_traces)."""
        if not len(spans):
            return None, []
        reached = float(spans.end_s.max()) if watermark is None else watermark
        if spans.caller is None:
            spans = self._parent_index().resolve(spans)  # may hold spans whose parent has not come yet
        new_edges = self._fold_spans(spans)
        self._watermark = max(self._watermark, reached)
        return self._close(self._watermark - self.grace_s), new_edges

    def _fold_spans(self, spans: SpanBatch) -> list[tuple[str, str]]:
        """Spans (with their callers) into their intervals, but for those of closed intervals (late)."""
        if not len(spans):
            return []
        bucket = np.floor(spans.end_s / self.interval_s) * self.interval_s
        late = bucket + self.interval_s <= self.closed_before
        if late.any():
            self.late += int(late.sum())
            if late.all():
                return []
            spans, bucket = spans.take(~late), bucket[~late]
        counted = np.ones(len(spans), dtype=bool) if spans.counted is None else np.asarray(spans.counted, dtype=bool)
        if counted.any():
            idx = np.flatnonzero(counted)
            keys = np.fromiter((self._intern(s, o) for s, o in zip(spans.service[idx], spans.operation[idx])),
                               np.int64, len(idx))
            self._fold(self._open, bucket[idx], keys, spans.duration_ms[idx], spans.error[idx])
        return self._edges(spans, bucket)

    @staticmethod
    def _fold(into: dict, bucket: np.ndarray, keys: np.ndarray, durations: np.ndarray, errors: np.ndarray) -> None:
        for b in np.unique(bucket):  # a loop over intervals (time steps), a few per batch
            here = bucket == b
            into.setdefault(float(b), []).append((keys[here], durations[here], errors[here]))

    def flush(self) -> RedPoints | None:
        """Close every open interval (at shutdown, when spans stop coming, in tests), spans still waiting for
        their parent folded in first; spans of those intervals are late after."""
        held = self._parents.release() if self._parents is not None else None
        if held is not None:
            self._fold_spans(held)
        return self._close(float("inf"))

    def has_open(self) -> bool:
        return bool(self._open or self._open_edges)

    def _parent_index(self) -> ParentIndex:
        if self._parents is None:
            self._parents = ParentIndex(self.max_span_ids, min(self.parent_wait_s, self.grace_s))
        return self._parents

    def _intern(self, service: str, operation: str) -> int:
        key = (str(service), str(operation))
        code = self._names.get(key)
        if code is None:
            code = self._names[key] = len(self._keys)
            self._keys.append(key)
        return code

    def _close(self, before: float) -> RedPoints | None:
        done = sorted({b for b in (*self._open, *self._open_edges) if b + self.interval_s <= before})
        reach = before if np.isfinite(before) else (done[-1] + self.interval_s if done else self.closed_before)
        self.closed_before = max(self.closed_before, reach)
        if not done:
            return None
        out = {k: [] for k in ("svc", "op", "end", "rate", "err", "q")}
        edge_out = {k: [] for k in ("caller", "callee", "end", "rate", "err", "p95")}
        for b in done:  # a loop over closed intervals
            end = b + self.interval_s
            parts = self._open.pop(b, None)
            if parts:
                groups, counts, failed, q = _summarize(parts, QUANTILES)
                out["svc"] += [self._keys[g][0] for g in groups]
                out["op"] += [self._keys[g][1] for g in groups]
                out["end"].append(np.full(len(groups), end))
                out["rate"].append(counts / self.interval_s)
                out["err"].append(failed / counts)
                out["q"].append(q)
            parts = self._open_edges.pop(b, None)
            if parts:
                groups, counts, failed, q = _summarize(parts, (0.95,))
                edge_out["caller"] += [self._edge_keys[g][0] for g in groups]
                edge_out["callee"] += [self._edge_keys[g][1] for g in groups]
                edge_out["end"].append(np.full(len(groups), end))
                edge_out["rate"].append(counts / self.interval_s)
                edge_out["err"].append(failed / counts)
                edge_out["p95"].append(q[:, 0])
        edges = _NO_EDGES
        if edge_out["end"]:
            edges = EdgePoints(edge_out["caller"], edge_out["callee"], np.concatenate(edge_out["end"]),
                               np.concatenate(edge_out["rate"]), np.concatenate(edge_out["err"]),
                               np.concatenate(edge_out["p95"]))
        if not out["end"]:
            empty = np.empty(0)
            return RedPoints([], [], empty, empty, empty, empty, empty, empty, edges)
        q = np.vstack(out["q"])
        return RedPoints(out["svc"], out["op"], np.concatenate(out["end"]), np.concatenate(out["rate"]),
                         np.concatenate(out["err"]), q[:, 0], q[:, 1], q[:, 2], edges)

    def _edges(self, spans: SpanBatch, bucket: np.ndarray) -> list[tuple[str, str]]:
        """Caller → callee edges from parents whose service differs."""
        new: list[tuple[str, str]] = []
        callers = np.asarray(spans.caller, dtype=object)
        cross = (callers != "") & (callers != spans.service)
        if not cross.any():
            return new
        idx = np.flatnonzero(cross)
        callers = callers[idx]
        pair = np.array([f"{c}\x1f{s}" for c, s in zip(callers, spans.service[idx])], dtype=object)
        codes, inverse = np.unique(pair, return_inverse=True)
        _, counts, q = quantiles_by_group(inverse, spans.duration_ms[idx], (0.95,))
        errors = np.bincount(inverse, weights=spans.error[idx].astype(np.float64))
        last = np.zeros(len(codes))
        np.maximum.at(last, inverse, spans.end_s[idx])
        first = np.full(len(codes), np.inf)
        np.minimum.at(first, inverse, spans.end_s[idx])
        edge_ids = np.empty(len(codes), dtype=np.int64)
        for k, code in enumerate(codes.tolist()):  # a loop over distinct edges in the batch (a handful)
            edge = tuple(code.split("\x1f"))
            edge_ids[k] = self._edge_id(edge)
            stats = self.edges.get(edge)
            if stats is None:
                stats = self.edges[edge] = EdgeStats(first_seen=float(first[k]))
                new.append(edge)
            stats.calls += int(counts[k])
            stats.errors += int(errors[k])
            stats.p95_ms = float(q[k, 0])
            stats.last_seen = float(last[k])
        self._fold(self._open_edges, bucket[idx], edge_ids[inverse], spans.duration_ms[idx], spans.error[idx])
        return new

    def _edge_id(self, edge: tuple[str, str]) -> int:
        code = self._edge_ids.get(edge)
        if code is None:
            code = self._edge_ids[edge] = len(self._edge_keys)
            self._edge_keys.append(edge)
        return code


def _summarize(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]], qs: tuple[float, ...]
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(groups, counts, errors, quantiles) of one interval's folded (keys, durations, errors) parts."""
    keys = np.concatenate([p[0] for p in parts])
    durations = np.concatenate([p[1] for p in parts])
    errors = np.concatenate([p[2] for p in parts])
    groups, counts, q = quantiles_by_group(keys, durations, qs)
    failed = np.bincount(keys, weights=errors.astype(np.float64))[groups]
    return groups, counts, failed, q
