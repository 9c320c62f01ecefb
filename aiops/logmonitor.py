"""Logs become signals: template counts per source as metric series, never-seen templates, error bursts.

Each log record's message goes through the streaming template miner (`detectors.logtemplates`).
Per interval (a minute by default) and per source (its service and host, when present) the monitor
counts each template and the records at ERROR level or worse (zero for a source that logged without
errors; a template absent from an interval sends no point), and hands those counts to the
pipeline as points of two metric series, `log_template_count{template_id, service, …}` and
`log_error_count{service, …}`, so the same detectors that watch CPU watch a burst of a message or of
errors. A template first seen after warm-up (the miner has seen `warmup_records`) is an anomaly by
itself. Every anomaly from logs carries its template and a few example lines, with tokens that look
like secrets masked.
"""

from __future__ import annotations

import re
import threading
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any

from detectors.logtemplates import TemplateMiner

__all__ = ["LogMonitor", "LogRecord", "mask_secrets"]

_SOURCE_LABELS = ("service", "host", "cluster")
_ERROR_SEVERITY = 17  # OpenTelemetry SeverityNumber: 17-20 ERROR, 21-24 FATAL
_SECRET = re.compile(
    r"(?i)(?P<key>password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|authorization|bearer)"
    r"(?P<sep>\s*[=:]\s*|\s+)(?P<value>(?:bearer\s+|basic\s+)?\S+)"
)
_LONG_TOKEN = re.compile(r"\b(?:[A-Za-z0-9+/_-]{32,}={0,2}|AKIA[0-9A-Z]{16})\b")  # keys, JWT parts, base64 blobs


def mask_secrets(line: str) -> str:
    """The line with values after secret-looking keys, and long opaque tokens, replaced by `***`."""
    line = _SECRET.sub(lambda m: f"{m.group('key')}{m.group('sep')}***", line)
    return _LONG_TOKEN.sub("***", line)


@dataclass(frozen=True)
class LogRecord:
    ts: float  # unix seconds
    body: str
    labels: dict[str, str]  # where it came from (service, host, …)
    severity: int = 0  # OpenTelemetry SeverityNumber (0: unspecified)


@dataclass(frozen=True)
class LogSignals:
    """What one call of `observe` produced for the pipeline."""

    points: list[dict[str, Any]]  # closed intervals' counts, in the ingest API's point shape
    new_templates: list[dict[str, Any]]  # {ts, template_id, template, labels, examples}


class LogMonitor:
    def __init__(self, interval_s: float = 60.0, warmup_records: int = 10_000, examples: int = 3,
                 miner: TemplateMiner | None = None) -> None:
        self.interval_s = interval_s
        self.warmup_records = warmup_records
        self.miner = miner or TemplateMiner()
        self._lock = threading.Lock()
        self._seen_records = 0
        self._known: set[int] = set()
        self._counts: dict[float, dict[tuple, int]] = defaultdict(lambda: defaultdict(int))
        self._errors: dict[float, dict[tuple, int]] = defaultdict(lambda: defaultdict(int))
        self._examples: dict[int, deque[str]] = defaultdict(lambda: deque(maxlen=examples))
        self._watermark = float("-inf")

    def observe(self, records: list[LogRecord], grace_s: float = 30.0) -> LogSignals:
        """Mine and count the records (a loop over records: each message is text to tokenize)."""
        new: list[dict[str, Any]] = []
        with self._lock:
            for r in records:
                tid, template = self.miner.add(r.body)
                tid = self.miner.resolve(tid)
                source = tuple((k, r.labels[k]) for k in _SOURCE_LABELS if k in r.labels)
                bucket = (r.ts // self.interval_s) * self.interval_s
                self._counts[bucket][(tid, source)] += 1
                if r.severity >= _ERROR_SEVERITY:
                    self._errors[bucket][source] += 1
                self._examples[tid].append(mask_secrets(r.body)[:500])
                if tid not in self._known:
                    self._known.add(tid)
                    if self._seen_records >= self.warmup_records:
                        new.append({"ts": r.ts, "template_id": tid, "template": template, "labels": dict(source),
                                    "examples": list(self._examples[tid])})
                self._seen_records += 1
                self._watermark = max(self._watermark, r.ts)
            points = self._close(self._watermark - grace_s)
        return LogSignals(points, new)

    def flush(self) -> list[dict[str, Any]]:
        with self._lock:
            return self._close(float("inf"))

    def examples(self, template_id: int) -> list[str]:
        with self._lock:
            return list(self._examples.get(self.miner.resolve(template_id), ()))

    def _close(self, before: float) -> list[dict[str, Any]]:
        points = []
        for bucket in sorted(b for b in self._counts if b + self.interval_s <= before):  # a loop over intervals
            ts = bucket + self.interval_s
            counts = self._counts.pop(bucket)
            for (tid, source), n in counts.items():
                points.append({"name": "log_template_count", "ts": ts, "value": float(n),
                               "labels": {"template_id": str(self.miner.resolve(tid)), **dict(source)}})
            errors = self._errors.pop(bucket, {})
            for source in {s for (_, s) in counts} | set(errors):  # a source that logged but had no error: 0
                points.append({"name": "log_error_count", "ts": ts, "value": float(errors.get(source, 0)),
                               "labels": dict(source)})
        return points

    def state_dict(self) -> dict[str, Any]:
        with self._lock:
            return {"miner": self.miner.state_dict(), "known": sorted(self._known), "seen": self._seen_records}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with self._lock:
            self.miner.load_state_dict(state["miner"])
            self._known = set(state["known"])
            self._seen_records = int(state["seen"])
