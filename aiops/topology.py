"""The service dependency map: edges seen in traces, merged with the configured map.

Traced edges (caller → callee, from parent/child spans across services) carry their latest closed
interval's call rate, error ratio and p95, running call and error totals, and when they were first
and last seen. The configured map (`alerting.incidents.topology`) fills in what traces do not see:
a service that calls anything in traces has its outgoing edges from traces only (its configured
callees are replaced); every other service keeps its configured callees. So an instrumented fleet
needs no configuration, and an uninstrumented dependency (a database, a queue) can still be named.

Incident grouping and root-cause ranking read `adjacency()`: the merged map as service → callees. It
is rebuilt only when the set of edges changes and returned as the same object until then, so a
reader can tell a change by identity and recompute what depends on it (connected components).

State is plain JSON (`state_dict` / `load_state_dict`), saved by the service as a checkpoint so the
map survives a restart.
"""

from __future__ import annotations

import math
import threading
from dataclasses import asdict, dataclass
from typing import Any, Literal

__all__ = ["Edge", "ServiceMap", "merge_states"]

_VERSION = 1


@dataclass
class Edge:
    caller: str
    callee: str
    source: Literal["traced", "config"]
    calls: int = 0  # traced calls in total
    errors: int = 0
    call_rate: float | None = None  # per second, in the latest closed interval
    error_ratio: float | None = None
    p95_ms: float | None = None
    first_seen: float | None = None
    last_seen: float | None = None


class ServiceMap:
    """Traced edges plus the configured map; thread-safe (ingest writes, the pipeline reads)."""

    def __init__(self, config: dict[str, list[str]] | None = None) -> None:
        self._lock = threading.Lock()
        self._config: dict[str, list[str]] = dict(config or {})
        self._traced: dict[tuple[str, str], Edge] = {}
        self._adjacency: dict[str, list[str]] = {}
        self._rebuild()

    def configure(self, config: dict[str, list[str]]) -> None:
        """A new configured map (settings reload)."""
        with self._lock:
            self._config = dict(config)
            self._rebuild()

    def known(self, caller: str, callee: str) -> bool:
        return (caller, callee) in self._traced

    def observe(self, edge: tuple[str, str], *, calls: int, errors: int, first_seen: float, last_seen: float) -> bool:
        """Running totals of a traced edge (from the RED aggregator); True when the edge is new to the map."""
        with self._lock:
            found = self._traced.get(edge)
            new = found is None
            if new:
                found = self._traced[edge] = Edge(*edge, source="traced", first_seen=first_seen)
            found.calls += calls
            found.errors += errors
            found.first_seen = min(found.first_seen or first_seen, first_seen)
            found.last_seen = max(found.last_seen or last_seen, last_seen)
            if new:
                self._rebuild()
            return new

    def interval(self, edge: tuple[str, str], *, rate: float, error_ratio: float, p95_ms: float) -> None:
        """The latest closed interval's figures of a traced edge."""
        with self._lock:
            found = self._traced.get(edge)
            if found is not None:
                found.call_rate, found.error_ratio = float(rate), float(error_ratio)
                found.p95_ms = float(p95_ms) if math.isfinite(p95_ms) else None

    def adjacency(self) -> dict[str, list[str]]:
        """The merged map, service → callees (the same object until the edges change)."""
        return self._adjacency

    def edges(self) -> list[Edge]:
        """Every edge of the merged map: traced ones with their figures, then configured ones."""
        with self._lock:
            traced = [Edge(**asdict(e)) for e in sorted(self._traced.values(), key=lambda e: (e.caller, e.callee))]
            callers = {e.caller for e in traced}
            config = [Edge(caller, callee, source="config") for caller, callees in sorted(self._config.items())
                      if caller not in callers for callee in callees]
        return traced + config

    def _rebuild(self) -> None:
        merged: dict[str, list[str]] = {}
        for caller, callee in sorted(self._traced):
            merged.setdefault(caller, []).append(callee)
        for caller, callees in self._config.items():
            if caller not in merged:
                merged[caller] = list(callees)
        self._adjacency = merged  # replaced, never changed in place: readers compare identity

    def state_dict(self) -> dict[str, Any]:
        with self._lock:
            return {"version": _VERSION, "edges": [asdict(e) for e in self._traced.values()]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("version") != _VERSION:
            raise ValueError(f"service map state version {state.get('version')!r}, expected {_VERSION}")
        edges = {}
        for row in state["edges"]:
            edge = Edge(**row)
            edges[(edge.caller, edge.callee)] = edge
        with self._lock:
            self._traced = edges
            self._rebuild()


def merge_states(states: list[dict[str, Any]]) -> dict[str, Any]:
    """One map state from several (the whole map saved by a process, parts saved by workers' partitions):
    an edge found in more than one keeps the figures of the latest seen."""
    edges: dict[tuple[str, str], dict[str, Any]] = {}
    for state in states:
        for row in state["edges"]:
            key = (row["caller"], row["callee"])
            if key not in edges or (row.get("last_seen") or 0) >= (edges[key].get("last_seen") or 0):
                edges[key] = row
    return {"version": _VERSION, "edges": list(edges.values())}
