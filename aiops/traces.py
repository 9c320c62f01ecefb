"""Spans in the service: RED series and edge series for the detectors, and the traced service map.

`TraceMonitor.observe` folds a request's spans into the `RedAggregator`; the intervals that closed
become metric points of ordinary series (interned in the series registry, published on the bus by
the caller with the usual backpressure), so the detectors, alerts and incidents see them like any
other metric:

    span_rate, span_error_ratio, span_latency_p50_ms, span_latency_p95_ms, span_latency_p99_ms
        {service, operation}
    edge_call_rate, edge_error_ratio, edge_latency_p95_ms
        {caller, callee, service=<callee>}   (service: so alerts on an edge group and rank with the callee)

and the edges feed the `ServiceMap`. An edge new to the map is returned once, to be recorded as a
change event (kind `topology`) so it shows among an incident's likely causes. The map is saved as a
checkpoint (`save` / `load`: when an edge appears, every `save_every_s`, at shutdown) so it survives
a restart (the aggregator's open intervals do not: at most one interval of figures is lost).

`with_trace_rules` adds the detection rule that watches latency and error-ratio series upwards only.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Connection

from aiops.settings import DetectionRule, DetectionSettings, TracesSettings
from aiops.store import repository
from aiops.topology import ServiceMap, merge_states
from detectors import MetricBatch
from detectors.red import RedAggregator, RedPoints, SpanBatch
from detectors.registry import default_registry
from ingest.registry import SeriesLimitReached, SeriesRegistry, series_key

__all__ = ["CHECKPOINT_NAME", "NewEdge", "TraceMonitor", "UPWARD_SELECTOR", "with_trace_rules"]

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "service-map"
UPWARD_SELECTOR = '{__name__=~"span_latency_.*|span_error_ratio|edge_latency_.*|edge_error_ratio"}'
_SPAN_SERIES = ("span_rate", "span_error_ratio", "span_latency_p50_ms", "span_latency_p95_ms", "span_latency_p99_ms")
_EDGE_SERIES = ("edge_call_rate", "edge_error_ratio", "edge_latency_p95_ms")


@dataclass(frozen=True)
class NewEdge:
    caller: str
    callee: str
    first_seen: float


class TraceMonitor:
    def __init__(self, settings: TracesSettings, registry: SeriesRegistry, service_map: ServiceMap,
                 save_every_s: float = 300.0, checkpoint: str = CHECKPOINT_NAME) -> None:
        self.settings = settings
        self.checkpoint = checkpoint  # a worker's monitor of one partition saves its own part of the map
        self.save_every_s = save_every_s  # the map's totals are saved this often (and when an edge appears)
        self._saved_at = float("-inf")
        self.registry = registry
        self.service_map = service_map
        self.aggregator = RedAggregator(settings.interval_s, settings.grace_s, settings.max_span_ids,
                                        parent_wait_s=settings.parent_wait_s)
        self._lock = threading.Lock()
        self._sids: dict[tuple[str, str, str], int] = {}
        self._seen: dict[tuple[str, str], tuple[int, int]] = {}  # edge → (calls, errors) already told to the map

    def observe(self, spans: SpanBatch, watermark: float | None = None) -> tuple[MetricBatch, list[NewEdge]]:
        """Fold spans in: the closed intervals' points and the edges new to the service map
        (`watermark`: see RedAggregator.add)."""
        with self._lock:
            return self._closed(self.aggregator.add(spans, watermark)[0])

    def flush(self) -> tuple[MetricBatch, list[NewEdge]]:
        """Close every open interval (spans stopped coming): their points, and edges new to the map."""
        with self._lock:
            return self._closed(self.aggregator.flush())

    def _closed(self, points: RedPoints | None) -> tuple[MetricBatch, list[NewEdge]]:
        new = self._update_map()
        return (self._points(points) if points is not None else MetricBatch.empty()), new

    def _update_map(self) -> list[NewEdge]:
        new = []
        for edge, stats in self.aggregator.edges.items():  # a loop over edges (tens), not spans
            calls, errors = self._seen.get(edge, (0, 0))
            if stats.calls == calls and edge in self._seen:
                continue
            self._seen[edge] = (stats.calls, stats.errors)
            if self.service_map.observe(edge, calls=stats.calls - calls, errors=stats.errors - errors,
                                        first_seen=stats.first_seen, last_seen=stats.last_seen):
                new.append(NewEdge(edge[0], edge[1], stats.first_seen))
        return new

    def _points(self, points: RedPoints) -> MetricBatch:
        ids: list[np.ndarray] = []
        ts: list[np.ndarray] = []
        values: list[np.ndarray] = []
        if len(points):
            sids = self._ids(_SPAN_SERIES, points.service, points.operation, self._span_labels)
            columns = (points.rate, points.error_ratio, points.p50_ms, points.p95_ms, points.p99_ms)
            for k, column in enumerate(columns):  # a loop over the five series kinds
                ids.append(sids[:, k])
                ts.append(points.interval_end)
                values.append(column)
        edges = points.edges
        if len(edges):
            sids = self._ids(_EDGE_SERIES, edges.caller, edges.callee, self._edge_labels)
            for k, column in enumerate((edges.rate, edges.error_ratio, edges.p95_ms)):
                ids.append(sids[:, k])
                ts.append(edges.interval_end)
                values.append(column)
            for caller, callee, rate, ratio, p95 in zip(edges.caller, edges.callee, edges.rate.tolist(),
                                                       edges.error_ratio.tolist(), edges.p95_ms.tolist()):
                self.service_map.interval((caller, callee), rate=rate, error_ratio=ratio, p95_ms=p95)
        if not ids:
            return MetricBatch.empty()
        sid, t, v = np.concatenate(ids), np.concatenate(ts), np.concatenate(values)
        keep = sid >= 0  # -1: past the series limit
        return MetricBatch.from_arrays(sid[keep], t[keep], v[keep])

    def _ids(self, names: tuple[str, ...], first: list[str], second: list[str], labels) -> np.ndarray:
        """Series ids, one row per (first, second) pair, one column per name; -1 past the series limit."""
        out = np.empty((len(first), len(names)), dtype=np.int64)
        for i, (a, b) in enumerate(zip(first, second)):  # a loop over groups of closed intervals, not spans
            for k, name in enumerate(names):
                key = (name, a, b)
                sid = self._sids.get(key)
                if sid is None:
                    try:
                        sid = self.registry.intern(series_key(name, labels(a, b)))
                    except SeriesLimitReached:
                        sid = -1
                    else:
                        self._sids[key] = sid
                out[i, k] = sid
        return out

    @staticmethod
    def _span_labels(service: str, operation: str) -> dict[str, str]:
        return {"service": service, "operation": operation}

    @staticmethod
    def _edge_labels(caller: str, callee: str) -> dict[str, str]:
        return {"caller": caller, "callee": callee, "service": callee}

    # -- the store ----------------------------------------------------------------------------------

    def record_new_edges(self, conn: Connection, edges: list[NewEdge], now: float) -> list[int]:
        """Each new edge as a change event (kind `topology`) with its audit entry; returns the event ids."""
        rows = [
            {
                "ts": e.first_seen,
                "kind": "topology",
                "title": f"new dependency: {e.caller} calls {e.callee}",
                "source": "traces",
                "labels": {"service": e.caller, "caller": e.caller, "callee": e.callee},
                "detail": {"change": "new_edge", "caller": e.caller, "callee": e.callee},
                "created_at": now,
            }
            for e in edges
        ]
        ids = repository.insert_change_events(conn, rows)
        repository.append_audit(conn, [
            {"ts": now, "actor": "traces", "action": "event.recorded", "subject": f"event:{i}",
             "detail": {"kind": "topology", "title": row["title"]}}
            for i, row in zip(ids, rows)
        ])
        return ids

    def save_due(self, now: float) -> bool:
        """Whether the map's running figures should be saved now (0: only at new edges and shutdown)."""
        return bool(self.save_every_s) and now - self._saved_at >= self.save_every_s

    def save(self, conn: Connection, now: float) -> None:
        """The map's traced edges, and up to where intervals are closed (their late spans stay dropped)."""
        state = {**self.service_map.state_dict(), "closed_before": self.aggregator.closed_before}
        data = json.dumps(state, separators=(",", ":")).encode()  # -inf: JSON's -Infinity, read back by json
        repository.save_checkpoint(conn, self.checkpoint, data, now)
        self._saved_at = now

    def load(self, conn: Connection, now: float, *, parts: bool = False) -> None:
        """Restore the saved map; `parts`: merged with the parts the workers' partitions save
        (`service-map:…`, aiops.partition_traces): the map a process that groups incidents reads."""
        self._saved_at = now
        states = []
        own = repository.load_checkpoint(conn, self.checkpoint)
        if own is not None and (state := _read_state(own[0])) is not None:
            self.aggregator.closed_before = float(state.get("closed_before", float("-inf")))
            states.append(state)
        if parts:
            saved = repository.load_checkpoints(conn, CHECKPOINT_NAME + ":").values()
            states += [state for state in map(_read_state, saved) if state is not None]
        if states:
            self.service_map.load_state_dict(merge_states(states))


def _read_state(data: bytes) -> dict | None:
    try:
        state = json.loads(data)
        ServiceMap().load_state_dict(state)  # raises on a state of another version or shape
        return state
    except (ValueError, KeyError, TypeError) as exc:  # an old or damaged checkpoint: traces rebuild it
        log.warning("service map not restored: %s", exc)
        return None


def with_trace_rules(detection: DetectionSettings, traces: TracesSettings) -> DetectionSettings:
    """`detection` plus, after its rules, one watching span and edge latency and error ratios upwards only.

    Added only when `traces.watch_up` is on and the default detector takes a `direction`; a user rule
    matching these series comes first and wins.
    """
    default = detection.default
    if not traces.watch_up or "direction" not in default_registry().parameters(default.detector):
        return detection
    rule = DetectionRule(selector=UPWARD_SELECTOR, detector=default.detector,
                         params={**default.params, "direction": "up"}, counter=False, calibrate=default.calibrate,
                         warning_score=default.warning_score, critical_score=default.critical_score,
                         runbook_url=default.runbook_url)
    return detection.model_copy(update={"rules": [*detection.rules, rule]})
