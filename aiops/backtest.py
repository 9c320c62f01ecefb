"""Backtest: replay recorded data through a configuration and report what it would have raised.

Operators preview a detector or threshold change here before applying it. Anomalies are grouped
into alerts as the service would (one per series while anomalies keep coming within
`alerting.resolve_after_s` of data time). Where the data carries labels (1 = anomalous point),
contiguous labelled runs of a series are its anomaly windows, and the report adds window recall,
alert precision, and a NAB-style score (standard profile: a detection at a window's start earns 1,
later in the window less along a sigmoid, a missed window costs 1, each false alarm 0.11 weighted by
its distance from the preceding window; normalized so 0 is never alarming and 100 is perfect).
Scoring rules from Lavin & Ahmad, "Evaluating Real-time Anomaly Detection Algorithms — the Numenta
Anomaly Benchmark" (ICMLA 2015).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aiops.detection import DetectionRouter
from aiops.replay import DataFileError, read_csv_series
from aiops.settings import Settings
from detectors import SEVERITIES, MetricBatch
from ingest.registry import SeriesKey, SeriesRegistry, series_key

__all__ = ["BacktestReport", "Points", "nab_style_score", "read_points", "run_backtest"]

_TP, _FP, _FN = 1.0, 0.11, 1.0  # NAB standard profile


@dataclass
class Points:
    """Recorded points of any number of series, in file order."""

    keys: list[SeriesKey]
    series_index: np.ndarray  # index into keys, per point
    ts: np.ndarray
    value: np.ndarray
    label: np.ndarray | None


def read_points(path: str | Path) -> Points:
    """A `timestamp,value[,label]` CSV (one series, named after the file) or JSON lines of points
    `{"name", "labels", "ts", "value", "label"?}`."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        series = read_csv_series(path)
        n = len(series.ts)
        return Points([series_key(path.stem, {})], np.zeros(n, dtype=np.int64), series.ts, series.value, series.label)
    keys: dict[SeriesKey, int] = {}
    index, ts, values, labels = [], [], [], []
    with open(path) as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                point = json.loads(line)
                key = series_key(str(point["name"]), {str(k): str(v) for k, v in (point.get("labels") or {}).items()})
                ts.append(float(point["ts"]))
                values.append(float(point["value"]))
                labels.append(int(point.get("label", -1)))
            except (ValueError, KeyError, TypeError) as exc:
                raise DataFileError(f"{path}:{line_no}: not a point {{name, labels, ts, value}}: {exc}") from None
            index.append(keys.setdefault(key, len(keys)))
    label_array = np.array(labels)
    has_labels = len(labels) > 0 and (label_array >= 0).all()
    return Points(list(keys), np.array(index, dtype=np.int64), np.array(ts), np.array(values), label_array if has_labels else None)


@dataclass
class BacktestAlert:
    series: str
    first_ts: float
    last_ts: float
    anomalies: int
    severity: str
    max_score: float


@dataclass
class BacktestReport:
    points: int
    series: int
    anomalies: int
    alerts: list[BacktestAlert] = field(default_factory=list)
    windows: int | None = None
    windows_detected: int | None = None
    precision: float | None = None
    recall: float | None = None
    nab_score: float | None = None

    def as_dict(self) -> dict:
        return {k: ([vars(a) for a in v] if k == "alerts" else v) for k, v in vars(self).items()}


def run_backtest(settings: Settings, data: Points, chunk: int = 8192) -> BacktestReport:
    """Replay `data` in time order through the detection of `settings`."""
    registry = SeriesRegistry()
    ids = np.array([registry.intern(k) for k in data.keys], dtype=np.int32)[data.series_index]
    order = np.argsort(data.ts, kind="stable")
    router = DetectionRouter(settings.detection, settings.alerting, registry)
    severity = np.zeros(len(order), dtype=np.int8)
    score = np.zeros(len(order))
    for start in range(0, len(order), chunk):
        take = order[start : start + chunk]
        found = router.update(MetricBatch.from_arrays(ids[take], data.ts[take], data.value[take]))
        severity[take] = found.severity
        score[take] = found.scores.score
    alerts = _group(data, ids, severity, score, settings.alerting.resolve_after_s, registry)
    report = BacktestReport(points=len(order), series=len(data.keys), anomalies=int((severity > 0).sum()), alerts=alerts)
    if data.label is not None:
        _add_accuracy(report, data, ids, severity > 0)
    return report


def _group(data, ids, severity, score, quiet_s, registry) -> list[BacktestAlert]:
    alerts: list[BacktestAlert] = []
    open_by_series: dict[int, BacktestAlert] = {}
    hits = np.flatnonzero(severity > 0)
    for i in hits[np.argsort(data.ts[hits], kind="stable")]:  # a loop over anomalies only
        sid = int(ids[i])
        t = float(data.ts[i])
        alert = open_by_series.get(sid)
        if alert is None or t - alert.last_ts > quiet_s:
            name, labels = registry.key(sid)
            where = ",".join(f'{k}="{v}"' for k, v in labels)
            alert = BacktestAlert(f"{name}{{{where}}}", t, t, 0, "warning", 0.0)
            alerts.append(alert)
            open_by_series[sid] = alert
        alert.last_ts = t
        alert.anomalies += 1
        alert.max_score = max(alert.max_score, float(score[i]))
        if SEVERITIES[severity[i]] == "critical":
            alert.severity = "critical"
    return alerts


def _windows(labels: np.ndarray) -> list[tuple[int, int]]:
    """Contiguous runs of 1s as inclusive (start, end) positions."""
    padded = np.r_[0, (labels > 0).astype(np.int8), 0]
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[0::2].tolist(), (edges[1::2] - 1).tolist()))


def nab_style_score(alarms: np.ndarray, labels: np.ndarray) -> tuple[float, float, float]:
    """(raw score, null detector's, perfect detector's) for one series in time order, standard profile."""
    windows = _windows(labels)

    def sig(p: float) -> float:
        return 2.0 / (1.0 + math.exp(5.0 * p)) - 1.0

    raw = 0.0
    for start, end in windows:
        hits = np.flatnonzero(alarms[start : end + 1])
        if len(hits):
            i = start + int(hits[0])
            raw += _TP * sig(-(end - i + 1) / (end - start + 1)) / sig(-1.0)
        else:
            raw -= _FN
    outside = np.flatnonzero(alarms & (labels <= 0))
    for i in outside:
        before = [w for w in windows if w[1] < i]
        if before:
            start, end = before[-1]
            width = max(end - start, 1)
            raw += _FP * (sig((i - end) / width) if (i - end) / width <= 3 else -1.0)
        else:
            raw -= _FP
    return raw, -_FN * len(windows), _TP * len(windows)


def _add_accuracy(report: BacktestReport, data: Points, ids: np.ndarray, alarms: np.ndarray) -> None:
    by_series = defaultdict(list)
    for position in np.argsort(data.ts, kind="stable"):
        by_series[int(ids[position])].append(position)
    raw = null = perfect = 0.0
    windows = detected = 0
    for positions in by_series.values():
        p = np.array(positions)
        labels, hits = data.label[p], alarms[p]
        for start, end in _windows(labels):
            windows += 1
            detected += bool(hits[start : end + 1].any())
        r, n, pf = nab_style_score(hits, labels)
        raw, null, perfect = raw + r, null + n, perfect + pf
    alarm_count = int(alarms.sum())
    report.windows = windows
    report.windows_detected = detected
    report.recall = detected / windows if windows else None
    report.precision = float((alarms & (data.label > 0)).sum() / alarm_count) if alarm_count else None
    report.nab_score = 100.0 * (raw - null) / (perfect - null) if perfect > null else None
