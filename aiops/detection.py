"""Which detector watches which series, per the `detection` settings, and reloading them live.

Every distinct detector spec (name + parameters) is one *slot*: one detector instance whose state
rows belong to the series routed to it, under slot-local dense ids. A series is routed once, when
first seen, to the first rule whose selector matches (else the default); per point, the work is a
gather of its slot and, when there are several slots, one masked sub-batch per slot: loops run over
detectors, never over series or points.

`reconfigure` applies new settings without a restart: a slot whose spec is unchanged keeps its
detector and every series' learned state; only series whose spec changed start a fresh warm-up.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aiops.matchers import Selector, parse_selector
from aiops.settings import AlertingSettings, DetectionSettings, DetectorSpec
from detectors import SEVERITIES, Detector, MetricBatch, Scores
from detectors.calibration import Calibrated
from detectors.counters import CounterRate
from detectors.registry import DetectorRegistry, default_registry
from ingest.registry import SeriesRegistry, grow_id_map

__all__ = ["Detection", "DetectionRouter", "ReconfigureReport", "put_rows", "take_rows"]

log = logging.getLogger(__name__)


@dataclass
class _Slot:
    key: str
    name: str
    detector: Detector
    counter: CounterRate | None = None  # counters are scored by their per-second rate
    local_of: np.ndarray = field(default_factory=lambda: np.full(0, -1, dtype=np.int32))  # global → local id
    n_local: int = 0

    def local_ids(self, global_ids: np.ndarray) -> np.ndarray:
        """Slot-local ids of `global_ids`, assigning new ones in order of first sight."""
        self.local_of = grow_id_map(self.local_of, int(global_ids.max()) + 1, -1)
        local = self.local_of[global_ids]
        missing = local < 0
        if missing.any():
            new = np.unique(global_ids[missing])
            self.local_of[new] = np.arange(self.n_local, self.n_local + len(new), dtype=np.int32)
            self.n_local += len(new)
            local = self.local_of[global_ids]
        return local


@dataclass(frozen=True)
class _Rule:
    selector: Selector | None  # None: the default
    text: str
    slot: int
    warning: float
    critical: float
    runbook_url: str | None = None


@dataclass
class Detection:
    """Scores of a batch, their severities (codes of `SEVERITIES`), and an explanation per hit."""

    scores: Scores
    severity: np.ndarray
    explanations: dict[int, dict[str, Any]]
    detector_names: dict[int, str]
    values: np.ndarray  # what was scored: the value, or a counter's per-second rate


@dataclass(frozen=True)
class ReconfigureReport:
    kept_detectors: int
    new_detectors: int
    rerouted_series: int


class DetectionRouter:
    def __init__(
        self,
        detection: DetectionSettings,
        alerting: AlertingSettings,
        series: SeriesRegistry,
        detectors: DetectorRegistry | None = None,
    ) -> None:
        self.series = series
        self.detectors = detectors or default_registry()
        self._lock = threading.Lock()  # update and reconfigure may come from different threads
        self._slots: list[_Slot] = []
        self._rules: list[_Rule] = []
        self._rule_of = np.full(0, -1, dtype=np.int32)  # global series id → rule index
        self._build(detection, alerting, previous={})

    # -- configuration ---------------------------------------------------------------------------

    def _build(self, detection: DetectionSettings, alerting: AlertingSettings, previous: dict[str, _Slot]) -> int:
        slots: dict[str, int] = {}
        self._slots = []
        kept = 0

        def slot_for(spec: DetectorSpec) -> int:
            nonlocal kept
            key = spec.key()
            if key not in slots:
                old = previous.get(key)
                if old is not None:
                    kept += 1
                detector = self.detectors.create(spec.detector, **spec.params)
                fresh = _Slot(
                    key,
                    spec.detector,
                    Calibrated(detector) if spec.calibrate else detector,
                    CounterRate() if spec.counter else None,
                )
                self._slots.append(old or fresh)
                slots[key] = len(self._slots) - 1
            return slots[key]

        rules = [
            _Rule(parse_selector(r.selector), r.selector, slot_for(r), *self._thresholds(r, alerting), r.runbook_url)
            for r in detection.rules
        ]
        default = detection.default
        rules.append(_Rule(None, "default", slot_for(default), *self._thresholds(default, alerting), default.runbook_url))
        self._rules = rules
        self._warning = np.array([r.warning for r in rules])
        self._critical = np.array([r.critical for r in rules])
        return kept

    @staticmethod
    def _thresholds(spec: DetectorSpec, alerting: AlertingSettings) -> tuple[float, float]:
        warning = spec.warning_score if spec.warning_score is not None else alerting.warning_score
        critical = spec.critical_score if spec.critical_score is not None else alerting.critical_score
        return warning, max(warning, critical)

    def reconfigure(self, detection: DetectionSettings, alerting: AlertingSettings) -> ReconfigureReport:
        """Apply new settings; unchanged detector specs keep their learned state."""
        with self._lock:
            known = np.flatnonzero(self._rule_of >= 0)
            old_slots = self._slots
            old_slot_of = self._slot_index()[self._rule_of[known]]
            kept = self._build(detection, alerting, previous={s.key: s for s in old_slots})
            self._rule_of[:] = -1
            if len(known):
                self._route(known)
            new_slot_of = self._slot_index()[self._rule_of[known]]
            old_keys = np.array([old_slots[k].key for k in old_slot_of], dtype=object)
            new_keys = np.array([self._slots[k].key for k in new_slot_of], dtype=object)
            moved = known[old_keys != new_keys]
            for old in old_slots:  # a series that leaves a slot starts afresh if it ever comes back
                if len(moved) and len(old.local_of):
                    old.local_of[moved[moved < len(old.local_of)]] = -1
        report = ReconfigureReport(kept, len(self._slots) - kept, len(moved))
        log.info("detection reconfigured", extra=vars(report))
        return report

    # -- routing and scoring ---------------------------------------------------------------------

    def _slot_index(self) -> np.ndarray:
        return np.array([r.slot for r in self._rules], dtype=np.int32)

    def _route(self, new_ids: np.ndarray) -> None:
        """Pick the rule of each new series (a Python loop, but over new series only)."""
        self._rule_of = grow_id_map(self._rule_of, int(new_ids.max()) + 1, -1)
        for sid in new_ids.tolist():
            name, labels = self.series.key(sid)
            label_map = dict(labels)
            self._rule_of[sid] = next(
                i for i, r in enumerate(self._rules) if r.selector is None or r.selector.matches(name, label_map)
            )

    def update(self, batch: MetricBatch) -> Detection:
        with self._lock:
            return self._update(batch)

    def _update(self, batch: MetricBatch) -> Detection:
        n = len(batch)
        sid = batch.series_id
        if n == 0:
            return Detection(Scores.empty(0), np.zeros(0, dtype=np.int8), {}, {}, np.zeros(0))
        if int(sid.max()) >= len(self._rule_of):
            self._route(np.unique(sid[sid >= len(self._rule_of)]))
        unseen = sid[self._rule_of[sid] < 0]
        if len(unseen):
            self._route(np.unique(unseen))
        rules = self._rule_of[sid]
        slot_index = self._slot_index()[rules]
        values = batch.value
        if len(self._slots) == 1:
            slot = self._slots[0]
            local = MetricBatch(slot.local_ids(sid), batch.ts, batch.value)
            if slot.counter is not None:
                local = slot.counter.apply(local)
                values = local.value
            scores = slot.detector.update(local)
            parts = [(0, slice(None), scores)]
        else:
            scores = Scores.empty(n)
            values = batch.value.copy()
            parts = []
            for k, slot in enumerate(self._slots):  # loop over detectors, not series
                where = np.flatnonzero(slot_index == k)
                if len(where) == 0:
                    continue
                local = MetricBatch(slot.local_ids(sid[where]), batch.ts[where], batch.value[where])
                if slot.counter is not None:
                    local = slot.counter.apply(local)
                    values[where] = local.value
                sub = slot.detector.update(local)
                for name in ("score", "expected", "lower", "upper", "ready"):
                    getattr(scores, name)[where] = getattr(sub, name)
                parts.append((k, where, sub))
        severity = (scores.score >= self._warning[rules]).astype(np.int8) + (scores.score >= self._critical[rules])
        severity[~scores.ready] = 0
        explanations, names = self._explain(severity, rules, parts)
        return Detection(scores, severity, explanations, names, values)

    def _explain(self, severity, rules, parts) -> tuple[dict[int, dict[str, Any]], dict[int, str]]:
        explanations: dict[int, dict[str, Any]] = {}
        names: dict[int, str] = {}
        for k, where, sub in parts:
            positions = np.arange(len(severity))[where]
            for j in np.flatnonzero(severity[where] > 0):  # hits are rare: a loop over anomalies
                i = int(positions[j])
                rule = self._rules[rules[i]]
                components = {c: float(v[j]) for c, v in (sub.components or {}).items()}
                explanations[i] = {
                    "detectors": components or {self._slots[k].name: float(sub.score[j])},
                    **({"scored": "per-second rate of a counter"} if self._slots[k].counter is not None else {}),
                    "rule": rule.text,
                    "severity": SEVERITIES[severity[i]],
                    "thresholds": {"warning": rule.warning, "critical": rule.critical},
                    **({"runbook_url": rule.runbook_url} if rule.runbook_url else {}),
                }
                names[i] = self._slots[k].name
        return explanations, names

    def state_dict(self) -> dict[str, Any]:
        """Every slot's learned state, keyed by its spec (see `load_state_dict`)."""
        with self._lock:
            return {
                "version": 1,
                "slots": [
                    {
                        "key": slot.key,
                        "detector": slot.detector.state_dict(),
                        "counter": slot.counter.state_dict() if slot.counter is not None else None,
                        "local_of": slot.local_of.copy(),
                        "n_local": slot.n_local,
                    }
                    for slot in self._slots
                ],
            }

    def load_state_dict(self, state: dict[str, Any]) -> int:
        """Restore the slots whose spec is configured now; returns how many were restored.

        Slots of specs no longer configured are dropped: their series warm up under the new ones.
        """
        if state.get("version") != 1:
            raise ValueError(f"unsupported detection state version {state.get('version')!r}")
        restored = 0
        with self._lock:
            by_key = {slot.key: slot for slot in self._slots}
            for saved in state["slots"]:
                slot = by_key.get(saved["key"])
                if slot is None:
                    continue
                slot.detector.load_state_dict(saved["detector"])
                if slot.counter is not None and saved["counter"] is not None:
                    slot.counter.load_state_dict(saved["counter"])
                slot.local_of = np.array(saved["local_of"], dtype=np.int32)
                slot.n_local = int(saved["n_local"])
                restored += 1
        return restored

    # -- per-partition state (aiops.partition_state) ----------------------------------------------

    def series_state(self, groups: list[np.ndarray]) -> list[dict[str, Any]]:
        """The learned state of each group of series ids alone (a Kafka partition's share).

        Per slot: the positions (into the group) of the series it holds rows for, and its detector's
        and counter's state restricted to those rows. Relies on the detector convention that every
        array of a state_dict is indexed by slot-local series id on its first axis.
        """
        with self._lock:
            full = [
                (slot, slot.detector.state_dict(), slot.counter.state_dict() if slot.counter is not None else None)
                for slot in self._slots
            ]
        out = []
        for ids in groups:
            slots = []
            for slot, detector, counter in full:
                inside = ids < len(slot.local_of)
                local = np.full(len(ids), -1, dtype=np.int64)
                local[inside] = slot.local_of[ids[inside]]
                held = np.flatnonzero(local >= 0)
                if len(held) == 0:
                    continue
                rows = local[held]
                slots.append({
                    "key": slot.key,
                    "series": held,
                    "detector": take_rows(detector, rows),
                    "counter": take_rows(counter, rows) if counter is not None else None,
                })
            out.append({"version": 1, "slots": slots})
        return out

    def load_series_state(self, state: dict[str, Any], series_ids: np.ndarray) -> int:
        """Restore a `series_state` group whose series are `series_ids` here; returns the slots restored.

        Series this process already holds get the saved rows instead; new ones get new local rows.
        Slots whose spec is not configured now are skipped (their series warm up afresh).
        """
        if state.get("version") != 1:
            raise ValueError(f"unsupported series state version {state.get('version')!r}")
        restored = 0
        with self._lock:
            by_key = {slot.key: slot for slot in self._slots}
            for saved in state["slots"]:
                slot = by_key.get(saved["key"])
                positions = np.asarray(saved["series"], dtype=np.int64)
                if slot is None or len(positions) == 0:
                    continue
                local = slot.local_ids(series_ids[positions])
                n = slot.n_local
                slot.detector.load_state_dict(put_rows(slot.detector.state_dict(), saved["detector"], local, n))
                if slot.counter is not None and saved["counter"] is not None:
                    slot.counter.load_state_dict(put_rows(slot.counter.state_dict(), saved["counter"], local, n))
                restored += 1
        return restored


def take_rows(tree: Any, rows: np.ndarray) -> Any:
    """`tree` (a state_dict) with every array cut to `rows` of its first axis; scalars kept."""
    if isinstance(tree, dict):
        return {k: take_rows(v, rows) for k, v in tree.items()}
    if isinstance(tree, np.ndarray) and tree.ndim >= 1:
        return tree[rows]
    return tree


def put_rows(current: Any, saved: Any, rows: np.ndarray, n: int) -> Any:
    """`current` (a state_dict) with `saved`'s rows written at `rows`, every array `n` rows long."""
    if isinstance(current, dict):
        return {k: put_rows(v, saved[k], rows, n) if k in saved else v for k, v in current.items()}
    if isinstance(current, np.ndarray) and current.ndim >= 1:
        saved = np.asarray(saved, dtype=current.dtype)
        out = np.zeros((n, *current.shape[1:]), dtype=current.dtype)
        k = min(len(current), n)
        out[:k] = current[:k]
        out[rows] = saved
        return out
    return current
