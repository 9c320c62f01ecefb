"""Logs become signals: template counts per source as metric series, never-seen templates, error bursts.

Each log record's message goes through the streaming template miner (`detectors.logtemplates`).
Per interval (a minute by default) and per source (its service, host, cluster and env labels, when
present) the monitor counts each template and the records at ERROR level or worse (zero for a source
that logged without errors; a template absent from an interval sends no point), and hands those counts to the
pipeline as points of two metric series, `log_template_count{template_id, service, …}` and
`log_error_count{service, …}`, so the same detectors that watch CPU watch a burst of a message or of
errors. A template first seen after warm-up (the miner has seen `warmup_records`) is an anomaly by
itself. Every anomaly from logs carries its template and a few example lines, with tokens that look
like secrets masked.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict, defaultdict, deque
from dataclasses import dataclass
from typing import Any

from detectors.logtemplates import TemplateMiner
from detectors.types import LogRecord

__all__ = ["LogMonitor", "LogRecord", "mask_secrets"]

_SOURCE_LABELS = ("service", "host", "cluster", "env")
_ERROR_SEVERITY = 17  # OpenTelemetry SeverityNumber: 17-20 ERROR, 21-24 FATAL
_ERROR_INTERVALS = 4  # intervals per source whose first error lines are kept (the detectors judge closed ones)
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
class LogSignals:
    """What one call of `observe` produced for the pipeline."""

    points: list[dict[str, Any]]  # closed intervals' counts, in the ingest API's point shape
    new_templates: list[dict[str, Any]]  # {ts, template_id, template, labels, examples}


class LogMonitor:
    """Mines records, counts them per template, source and interval, and remembers examples (thread-safe).

    Memory is bounded: the miner holds at most `max_templates` templates (least recently seen evicted);
    examples and the set of known templates are pruned to the miner's live templates once they grow
    past twice that; error lines are kept for at most `max_sources` sources (least recently logging
    first out); counts are held only for intervals still open. A record older than an interval
    already closed is mined but not counted (`late`): its interval's points are gone. The first `examples`
    error lines of each source's last few intervals are kept, so an error-count anomaly shows the lines of
    the interval it is about.
    """

    def __init__(self, interval_s: float = 60.0, warmup_records: int = 10_000, examples: int = 3,
                 miner: TemplateMiner | None = None, grace_s: float = 30.0, max_sources: int = 10_000) -> None:
        self.interval_s = interval_s
        self.warmup_records = warmup_records
        self.grace_s = grace_s
        self.max_sources = max_sources
        self.miner = miner if miner is not None else TemplateMiner()  # an empty miner is falsy (len 0)
        self.late = 0
        self._lock = threading.Lock()
        self._seen_records = 0
        self._known: set[int] = set()
        self._counts: dict[float, dict[tuple, int]] = defaultdict(lambda: defaultdict(int))
        self._errors: dict[float, dict[tuple, int]] = defaultdict(lambda: defaultdict(int))
        self._examples: dict[int, deque[str]] = defaultdict(lambda: deque(maxlen=examples))
        self._error_lines: OrderedDict[tuple, dict[float, list[tuple[int, str]]]] = OrderedDict()
        self._n_examples = examples
        self._watermark = float("-inf")
        self._closed_until = float("-inf")  # intervals starting before this have been handed out
        self._arrived: float | None = None  # clock time of the last `observe` that gave `now`

    def observe(self, records: list[LogRecord], grace_s: float | None = None, now: float | None = None) -> LogSignals:
        """Mine and count the records (a loop over records: each message is text to tokenize).

        Intervals close once the latest record time, capped at `now` when given (so one source stamping
        its lines ahead of the clock does not close everyone's intervals early), is `grace_s` past them.
        """
        grace = self.grace_s if grace_s is None else grace_s
        new: list[dict[str, Any]] = []
        with self._lock:
            ids = self.miner.add_many([r.body for r in records])
            resolve, interval, known = self.miner.resolve, self.interval_s, self._known
            sources: dict[int, tuple] = {}  # records of one resource share their labels dict
            for r, tid in zip(records, ids):
                tid = resolve(tid)
                source = sources.get(id(r.labels))
                if source is None:
                    source = sources[id(r.labels)] = tuple((k, r.labels[k]) for k in _SOURCE_LABELS if k in r.labels)
                line = r.body[:500]  # kept raw, masked when read: most examples are never read
                self._examples[tid].append(line)
                bucket = (r.ts // interval) * interval
                error = r.severity >= _ERROR_SEVERITY
                if error:
                    self._error_line(source, bucket, tid, line)
                if bucket < self._closed_until:
                    self.late += 1
                else:
                    self._counts[bucket][(tid, source)] += 1
                    if error:
                        self._errors[bucket][source] += 1
                if tid not in known:
                    known.add(tid)
                    if self._seen_records >= self.warmup_records:
                        new.append({"ts": r.ts, "template_id": tid, "template": self.miner.template(tid),
                                    "labels": dict(source), "severity": r.severity,
                                    "examples": [mask_secrets(x) for x in self._examples[tid]]})
                self._seen_records += 1
            if now is not None:
                self._arrived = now
            if records:
                latest = max(r.ts for r in records)
                self._watermark = max(self._watermark, min(latest, now) if now is not None else latest)
            points = self._close(self._watermark - grace)
            if len(self._known) > 2 * self.miner.max_templates:
                self._prune()
        return LogSignals(points, new)

    def flush(self) -> list[dict[str, Any]]:
        with self._lock:
            return self._close(float("inf"))

    def close_idle(self, now: float) -> list[dict[str, Any]]:
        """Close every open interval once nothing has arrived for `interval_s + grace_s` (by the `now` of
        `observe`): when all sources fall silent, e.g. right after a burst, their last counts still go out."""
        with self._lock:
            if self._arrived is None or now - self._arrived < self.interval_s + self.grace_s or not self._counts:
                return []
            return self._close(float("inf"))

    def examples(self, template_id: int) -> list[str]:
        """Recent lines of a template, secrets masked."""
        with self._lock:
            return [mask_secrets(x) for x in self._examples.get(self.miner.resolve(template_id), ())]

    def template(self, template_id: int) -> str | None:
        """The template's text as it stands now; None once it was evicted."""
        with self._lock:
            try:
                return self.miner.template(template_id)
            except KeyError:
                return None

    def error_lines(self, labels: dict[str, str], ts: float | None = None) -> list[tuple[int, str]]:
        """The first (template id, masked line) of records at ERROR or worse from the source `labels` names, in
        the interval ending at `ts` (how its `log_error_count` point is stamped); else in its latest interval."""
        source = tuple((k, labels[k]) for k in _SOURCE_LABELS if k in labels)
        with self._lock:
            buckets = self._error_lines.get(source)
            if not buckets:
                return []
            wanted = ts - self.interval_s if ts is not None else None
            return [(tid, mask_secrets(line)) for tid, line in buckets.get(wanted) or buckets[max(buckets)]]

    def _error_line(self, source: tuple, bucket: float, tid: int, line: str) -> None:
        buckets = self._error_lines.pop(source, None)
        if buckets is None:
            buckets = {}
            if len(self._error_lines) >= self.max_sources:
                self._error_lines.popitem(last=False)
        lines = buckets.get(bucket)
        if lines is None:
            lines = buckets[bucket] = []
            if len(buckets) > _ERROR_INTERVALS:
                del buckets[min(buckets)]
        if len(lines) < self._n_examples:
            lines.append((tid, line))
        self._error_lines[source] = buckets

    def _prune(self) -> None:
        live = set(self.miner.templates())  # evicted ids never come back: forgetting them is safe
        self._known &= live
        for tid in [t for t in self._examples if t not in live]:
            del self._examples[tid]

    def _close(self, before: float) -> list[dict[str, Any]]:
        points = []
        for bucket in sorted(b for b in self._counts if b + self.interval_s <= before):  # a loop over intervals
            ts = bucket + self.interval_s
            self._closed_until = max(self._closed_until, ts)
            counts = self._counts.pop(bucket)
            for (tid, source), n in counts.items():
                points.append({"name": "log_template_count", "ts": ts, "value": float(n),
                               "labels": {"template_id": str(self.miner.resolve(tid)), **dict(source)}})
            errors = self._errors.pop(bucket, {})
            for source in {s for (_, s) in counts} | set(errors):  # a source that logged but had no error: 0
                points.append({"name": "log_error_count", "ts": ts, "value": float(errors.get(source, 0)),
                               "labels": dict(source)})
        return points

    def state_dict(self, open_intervals: bool = False) -> dict[str, Any]:
        """The template table and what warm-up has seen (plain JSON). With `open_intervals` (a Kafka worker's
        partition checkpoint, whose offset says those records are done) also the counts of intervals still
        open, the watermark, and a few masked examples per live template."""
        with self._lock:
            state = {"version": 1, "miner": self.miner.state_dict(), "known": sorted(self._known),
                     "seen": self._seen_records}
            if open_intervals:
                state["open"] = {
                    "counts": [[b, tid, list(map(list, src)), n] for b, c in self._counts.items() for (tid, src), n in c.items()],
                    "errors": [[b, list(map(list, src)), n] for b, e in self._errors.items() for src, n in e.items()],
                    "watermark": self._watermark if self._watermark > float("-inf") else None,
                    "closed_until": self._closed_until if self._closed_until > float("-inf") else None,
                    "examples": {str(tid): [mask_secrets(x) for x in lines] for tid, lines in self._examples.items()
                                 if tid in self._known},
                }
            return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with self._lock:
            self.miner.load_state_dict(state["miner"])
            self._known = set(state["known"])
            self._seen_records = int(state["seen"])
            opened = state.get("open")
            if opened is not None:
                for b, tid, src, n in opened["counts"]:
                    self._counts[float(b)][(int(tid), tuple(map(tuple, src)))] += int(n)
                for b, src, n in opened["errors"]:
                    self._errors[float(b)][tuple(map(tuple, src))] += int(n)
                if opened["watermark"] is not None:
                    self._watermark = float(opened["watermark"])
                if opened["closed_until"] is not None:
                    self._closed_until = float(opened["closed_until"])
                for tid, lines in opened["examples"].items():
                    self._examples[int(tid)].extend(lines)
