"""Entity monitoring: each entity's latest metrics as one row, judged by an IsolationForest.

Per `detection.entities` rule, a series belongs to an entity when its labels hold every `group_by`
label, its name is one of `features`, and the rule's selector matches. `observe` keeps the latest
value of each (entity, feature) in a matrix (a vectorized scatter per batch); every `interval_s` of
wall-clock time `tick` scores each complete row, turns high scores into anomalies (attached to the
series of the feature that drove the score, alerted per entity), and adds the rows to the training
buffer. Refitting runs in a background thread every `refit_every_s`, swapping the model in whole.

In a Kafka worker the monitor sees the entities of the partitions it owns (aiops.partitioning keeps
an entity's series on one partition); `forget` drops the rows of a revoked partition's series, so an
entity another worker now owns is not scored here on stale values. Forests are not checkpointed.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

import numpy as np

from aiops.alerts import AnomalyRecord
from aiops.matchers import parse_selector
from aiops.partitioning import entity_alert_name
from aiops.settings import EntityRule
from detectors import SEVERITIES, MetricBatch
from detectors.entity import EntityDetector
from ingest.registry import SeriesRegistry

__all__ = ["EntityMonitor"]

log = logging.getLogger(__name__)


@dataclass
class _Group:
    rule: EntityRule
    detector: EntityDetector
    warning: float
    critical: float
    entities: dict[tuple[str, ...], int] = field(default_factory=dict)
    latest: np.ndarray = field(default_factory=lambda: np.full((0, 0), np.nan))
    series_of: np.ndarray = field(default_factory=lambda: np.full((0, 0), -1, dtype=np.int64))
    last_tick: float = 0.0
    last_fit: float = 0.0
    fitting: bool = False


class EntityMonitor:
    def __init__(self, rules: list[EntityRule], series: SeriesRegistry) -> None:
        self.series = series
        self._lock = threading.Lock()
        self._groups = [
            _Group(
                rule,
                EntityDetector(len(rule.features), rule.history, rule.min_rows, rule.n_estimators, seed=rule.seed),
                rule.warning_score,
                max(rule.warning_score, rule.critical_score),
                latest=np.full((0, len(rule.features)), np.nan),
                series_of=np.full((0, len(rule.features)), -1, dtype=np.int64),
            )
            for rule in rules
        ]
        self._selectors = [parse_selector(r.selector) for r in rules]
        self._map = np.full((len(rules), 0), -1, dtype=np.int64)  # [group, series] → entity*F + feature
        self._routed = 0

    @property
    def enabled(self) -> bool:
        return bool(self._groups)

    def _route_new_series(self) -> None:
        """Place series interned since last time (a loop over new series only)."""
        total = len(self.series)
        if total <= self._routed:
            return
        grown = np.full((len(self._groups), total), -1, dtype=np.int64)
        grown[:, : self._map.shape[1]] = self._map
        self._map = grown
        for sid in range(self._routed, total):
            name, labels = self.series.key(sid)
            label_map = dict(labels)
            for g, group in enumerate(self._groups):
                rule = group.rule
                if name not in rule.features or not all(k in label_map for k in rule.group_by):
                    continue
                if not self._selectors[g].matches(name, label_map):
                    continue
                entity = tuple(label_map[k] for k in rule.group_by)
                e = group.entities.setdefault(entity, len(group.entities))
                if e >= len(group.latest):
                    group.latest = np.vstack([group.latest, np.full((len(group.entities) - len(group.latest), len(rule.features)), np.nan)])
                    group.series_of = np.vstack([group.series_of, np.full((len(group.entities) - len(group.series_of), len(rule.features)), -1)])
                f = rule.features.index(name)
                group.series_of[e, f] = sid
                self._map[g, sid] = e * len(rule.features) + f
        self._routed = total

    def observe(self, batch: MetricBatch) -> None:
        if not self._groups or len(batch) == 0:
            return
        with self._lock:
            self._route_new_series()
            for g, group in enumerate(self._groups):  # loop over entity rules, not series
                cell = self._map[g, batch.series_id]
                hit = cell >= 0
                if hit.any():
                    group.latest.reshape(-1)[cell[hit]] = batch.value[hit]

    def forget(self, series_ids: np.ndarray) -> None:
        """Clear the latest values of these series: their entities are incomplete, so not scored, until
        every feature arrives again (a worker's revoked partitions)."""
        if not self._groups or len(series_ids) == 0:
            return
        with self._lock:
            self._route_new_series()
            ids = series_ids[series_ids < self._map.shape[1]]
            for g, group in enumerate(self._groups):  # a loop over entity rules, not series
                cell = self._map[g, ids]
                group.latest.reshape(-1)[cell[cell >= 0]] = np.nan

    def tick(self, now: float) -> list[AnomalyRecord]:
        """Score entities whose interval has passed; start background refits that are due."""
        records: list[AnomalyRecord] = []
        for group in self._groups:
            if now - group.last_tick < group.rule.interval_s:
                continue
            group.last_tick = now
            with self._lock:
                rows = group.latest.copy()
                series_of = group.series_of.copy()
                names = list(group.entities)
            complete = np.isfinite(rows).all(axis=1)
            if not complete.any():
                continue
            scores, attributions = group.detector.score(rows[complete])
            group.detector.observe(rows[complete])
            records += self._anomalies(group, now, np.flatnonzero(complete), scores, attributions, rows, series_of, names)
            if not group.fitting and now - group.last_fit >= group.rule.refit_every_s:
                self._refit_in_background(group, now)
        return records

    def _anomalies(self, group, now, entities, scores, attributions, rows, series_of, names) -> list[AnomalyRecord]:
        out = []
        rule = group.rule
        for j in np.flatnonzero(scores >= group.warning):  # a loop over anomalous entities
            e = int(entities[j])
            shares = dict(sorted(zip(rule.features, attributions[j].tolist()), key=lambda kv: -kv[1]))
            top = max(range(len(rule.features)), key=lambda f: attributions[j, f])
            sid = int(series_of[e, top])
            labels = dict(zip(rule.group_by, names[e]))
            severity = 2 if scores[j] >= group.critical else 1
            out.append(
                AnomalyRecord(
                    series_id=sid,
                    key=self.series.key(sid),
                    ts=now,
                    value=float(rows[e, top]),
                    expected=None,
                    lower=None,
                    upper=None,
                    score=float(scores[j]),
                    severity=SEVERITIES[severity],
                    detector=EntityDetector.name,
                    explanation={
                        "detectors": {EntityDetector.name: float(scores[j])},
                        "entity": {
                            "rule": rule.name,
                            "labels": labels,
                            "features": dict(zip(rule.features, rows[e].tolist())),
                            "attributions": shares,
                        },
                        **({"runbook_url": rule.runbook_url} if rule.runbook_url else {}),
                    },
                    alert_key=(entity_alert_name(rule.name), tuple(sorted(labels.items()))),
                )
            )
        return out

    def _refit_in_background(self, group: _Group, now: float) -> None:
        group.fitting = True

        def fit() -> None:
            try:
                if group.detector.refit():
                    group.last_fit = now
                    log.info("entity model refit", extra={"rule": group.rule.name, "entities": len(group.entities)})
            except Exception:
                log.exception("entity model refit failed", extra={"rule": group.rule.name})
            finally:
                group.fitting = False

        threading.Thread(target=fit, name=f"aiops-entity-fit-{group.rule.name}", daemon=True).start()

    def refit_now(self) -> None:
        """Fit every group in this thread (tests, and a start with history)."""
        for group in self._groups:
            group.detector.refit()
