"""Log signals in the service: what /v1/logs feeds, what the pipeline alerts on, and the context anomalies carry.

`LogAnomalies` wraps one `LogMonitor` (built from the `logs` settings) for the three places that use it:

- ingest (`observe`, off the event loop): records are mined and counted; closed intervals come back as
  points of `log_template_count` / `log_error_count` for the normal metric path (`batch`: the ingest point
  decoder), and templates first seen after warm-up are queued;
- the pipeline's housekeeping (`tick`): when every source has fallen silent, the intervals left open are
  closed and published all the same;
- the pipeline's housekeeping (`take`): the queued new templates become anomaly records on their
  `log_template_count` series, so they open (or update) an alert like any other anomaly;
- the pipeline's detection (`enrich`): an anomaly the detectors found on a log series gets the template
  and a few example lines (secrets masked) in its explanation, so the API, alerts and notifications show
  what was logged, not only how much. New-template anomalies carry the same context, under the same key.

The template table is checkpointed with the detectors (`state_dict`, name `log-templates`), so a restart
keeps the template ids the series are labelled with, and does not warm up again.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections import deque
from typing import Any

import msgspec

from aiops.alerts import AnomalyRecord
from aiops.logmonitor import LogMonitor
from aiops.settings import LogSettings
from detectors.logtemplates import TemplateMiner
from detectors.types import LogRecord, MetricBatch
from ingest.points import PointDecoder
from ingest.registry import SeriesLimitReached, SeriesRegistry, series_key

__all__ = ["CHECKPOINT_NAME", "DETECTOR", "LOG_SERIES", "LogAnomalies"]

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "log-templates"
DETECTOR = "log_new_template"  # the detector name of a never-seen-template anomaly
LOG_SERIES = ("log_template_count", "log_error_count")
_MAX_QUEUED = 1000  # new templates waiting for the pipeline; past it the oldest are dropped (counted)
_MAX_UNPUBLISHED = 100_000  # points that found the bus full, sent with the next request


class LogAnomalies:
    def __init__(self, settings: LogSettings, registry: SeriesRegistry, decoder: PointDecoder | None = None) -> None:
        self.settings = settings
        self.registry = registry
        self.decoder = decoder if decoder is not None else PointDecoder(registry)
        self.rejected_points = 0
        miner = TemplateMiner(max_templates=settings.max_templates)
        self.monitor = LogMonitor(settings.interval_s, settings.warmup_records, settings.examples, miner=miner,
                                  grace_s=settings.grace_s)
        self.dropped = 0  # new-template events or points dropped because a bound was reached
        self._lock = threading.Lock()
        self._new: deque[dict[str, Any]] = deque()
        self._unpublished: list[dict[str, Any]] = []

    # -- ingest ---------------------------------------------------------------------------------

    def observe(self, records: list[LogRecord], now: float | None = None) -> list[dict[str, Any]]:
        """Mine and count the records; returns the points of intervals now closed (and any left unpublished)."""
        signals = self.monitor.observe(records, now=now)
        with self._lock:
            for event in signals.new_templates:
                if len(self._new) >= _MAX_QUEUED:
                    self._new.popleft()
                    self.dropped += 1
                self._new.append(event)
            points, self._unpublished = self._unpublished + signals.points, []
        return points

    def tick(self, now: float) -> list[dict[str, Any]]:
        """Points of intervals left open by sources that all fell silent (and any left unpublished)."""
        points = self.monitor.close_idle(now)
        with self._lock:
            if not points and not self._unpublished:
                return []
            points, self._unpublished = self._unpublished + points, []
        return points

    def batch(self, points: list[dict[str, Any]], now: float) -> MetricBatch:
        """The points as a batch through the ingest point decoder (registry, checks), rejections counted."""
        decoded = self.decoder.decode(msgspec.json.encode(points), now)
        self.rejected_points += len(decoded.rejected)  # e.g. past ingest.max_series
        return decoded.batch

    def requeue(self, points: list[dict[str, Any]]) -> None:
        """Points the bus had no room for: they go out with the next request (the records are already counted)."""
        with self._lock:
            waiting = points + self._unpublished
            self.dropped += max(0, len(waiting) - _MAX_UNPUBLISHED)
            self._unpublished = waiting[:_MAX_UNPUBLISHED]

    # -- pipeline -------------------------------------------------------------------------------

    def take(self) -> list[AnomalyRecord]:
        """Anomaly records for the templates first seen after warm-up since the last call."""
        with self._lock:
            events, self._new = list(self._new), deque()
        records = []
        for e in events:  # a loop over new templates: rare
            labels = {"template_id": str(e["template_id"]), **e["labels"]}
            key = series_key("log_template_count", labels)
            try:
                sid = self.registry.intern(key)
            except SeriesLimitReached:
                log.warning("new log template not alerted: series limit reached", extra={"template": e["template"]})
                continue
            context = self._template_context(e["template_id"], e["template"], e["examples"])
            records.append(AnomalyRecord(
                series_id=sid, key=key, ts=e["ts"], value=1.0, expected=0.0, lower=None, upper=None, score=1.0,
                severity="critical" if e["severity"] >= 17 else "warning", detector=DETECTOR,
                explanation={"detectors": {DETECTOR: 1.0}, "log": {**context, "new_template": True}},
            ))
        return records

    def enrich(self, records: list[AnomalyRecord]) -> list[AnomalyRecord]:
        """The records with log context added to those on a log series (a loop over anomalies, not points)."""
        out = []
        for r in records:
            name, labels = r.key
            if name not in LOG_SERIES or "log" in r.explanation:
                out.append(r)
                continue
            labels = dict(labels)
            if name == "log_template_count" and labels.get("template_id", "").isdigit():
                context = self._template_context(int(labels["template_id"]), None, None)
            else:
                context = self._error_context(labels, r.ts)
            out.append(dataclasses.replace(r, explanation={**r.explanation, "log": context}))
        return out

    def _template_context(self, tid: int, template: str | None, examples: list[str] | None) -> dict[str, Any]:
        current = self.monitor.template(tid)
        return {"template_id": tid, "template": current if current is not None else template,
                "examples": self.monitor.examples(tid) or list(examples or ())}

    def _error_context(self, labels: dict[str, str], ts: float) -> dict[str, Any]:
        lines = self.monitor.error_lines(labels, ts)
        templates = {tid: self.monitor.template(tid) for tid, _ in lines}
        return {"templates": [t for t in templates.values() if t is not None], "examples": [line for _, line in lines]}

    # -- checkpoint -----------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return self.monitor.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.monitor.load_state_dict(state)
        self.monitor.miner.max_templates = self.settings.max_templates  # the setting, not the saved cap
