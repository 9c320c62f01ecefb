"""Anomalies become alerts: one firing alert per fingerprint, updated rather than repeated.

The fingerprint of an anomaly alert is a hash of its series identity, so however many anomalous
points a series produces while it misbehaves, an SRE sees one alert whose count and latest details
move. An alert with no new anomaly for `resolve_after_s` resolves; a later anomaly opens a new one.
An alert that opens `flap_opens` times within `flap_window_s` is *flapping*: it is marked so, and it
needs `flap_hold` times the usual quiet period to resolve, so it is held open instead of closing and
reopening (and, once notifications exist, instead of paging again and again).
Firing alerts are cached in memory (loaded from the store at start), and every change is written
through the connection the caller's transaction holds.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from aiops.explain import fmt_duration, fmt_value
from aiops.matchers import parse_selector
from aiops.settings import InhibitRule
from aiops.silences import SilenceBook
from aiops.store import repository
from ingest.registry import SeriesKey

__all__ = ["AlertManager", "AnomalyRecord", "AlertEvent", "fingerprint_of"]

_SEVERITY_RANK = {"warning": 1, "critical": 2}


def fingerprint_of(kind: str, key: SeriesKey) -> str:
    name, labels = key
    canonical = "\x1f".join([kind, name, *(f"{k}={v}" for k, v in labels)])
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class AnomalyRecord:
    series_id: int
    key: SeriesKey
    ts: float
    value: float
    expected: float | None
    lower: float | None
    upper: float | None
    score: float
    severity: str
    detector: str
    explanation: dict[str, Any]
    alert_key: SeriesKey | None = None  # what the alert is about when not the series (an entity)
    alert_kind: str = "anomaly"

    @property
    def fingerprint(self) -> str:
        return fingerprint_of(self.alert_kind, self.alert_key or self.key)


@dataclass(frozen=True, slots=True)
class AlertEvent:
    event: str  # opened | updated | resolved
    alert_id: int
    fingerprint: str
    severity: str
    summary: str
    silenced_by: str | None = None
    flapping: bool = False
    labels: dict[str, str] | None = None
    first_seen: float = 0.0

    @classmethod
    def of(cls, event: str, alert: dict[str, Any]) -> AlertEvent:
        return cls(
            event,
            alert["id"],
            alert["fingerprint"],
            alert["severity"],
            alert["summary"],
            alert.get("silenced_by"),
            bool(alert.get("flapping")),
            dict(alert["labels"]),
            alert["first_seen"],
        )


class AlertManager:
    def __init__(
        self,
        resolve_after_s: float,
        silences: SilenceBook | None = None,
        flap_opens: int = 3,
        flap_window_s: float = 3600.0,
        flap_hold: float = 4.0,
        inhibit: Sequence[InhibitRule] = (),
        shared: bool = False,
    ) -> None:
        self.resolve_after_s = resolve_after_s
        self.shared = shared  # other processes (Kafka workers) write alerts too: ask the store before opening
        self.silences = silences or SilenceBook()
        self.flap_opens = flap_opens
        self.flap_window_s = flap_window_s
        self.flap_hold = flap_hold
        self.predictive_quiet_s = resolve_after_s  # forecasts refresh predictive alerts; the service sets this
        self._firing: dict[str, dict[str, Any]] = {}
        self._opened: dict[str, deque[float]] = {}  # recent openings per fingerprint (wall clock)
        self.configure_inhibition(inhibit)

    def configure_inhibition(self, rules: Sequence[InhibitRule]) -> None:
        self._inhibit = [(r, parse_selector(r.source), parse_selector(r.target)) for r in rules]

    def _muted_by(self, alert: dict[str, Any], now: float) -> str | None:
        """A silence or maintenance window muting the alert, else a firing alert inhibiting it."""
        silence = self.silences.match(alert["labels"], now)
        if silence is not None:
            return silence
        labels = alert["labels"]
        for rule, source, target in self._inhibit:  # a loop over rules and firing alerts, not points
            if alert["severity"] != rule.target_severity or not target.matches_labels(labels):
                continue
            for other in self._firing.values():
                if other["id"] == alert.get("id") or other["severity"] != rule.source_severity or not source.matches_labels(other["labels"]):
                    continue
                if all(k in labels and other["labels"].get(k) == labels[k] for k in rule.equal):
                    return f"inhibited:alert:{other['id']}"
        return None

    def load(self, conn: Connection, keep: Callable[[dict[str, Any]], bool] | None = None) -> None:
        """Cache the firing alerts; a Kafka worker `keep`s only those of the series it owns."""
        self._firing = {row["fingerprint"]: row for row in repository.firing_alerts(conn) if keep is None or keep(row)}

    @property
    def firing_count(self) -> int:
        return len(self._firing)

    def observe(self, conn: Connection, records: Sequence[AnomalyRecord], now: float) -> tuple[list[int], list[AlertEvent]]:
        """Open or update the alert of each record; returns each record's alert id, and the events."""
        by_fp: dict[str, list[int]] = {}
        for i, rec in enumerate(records):
            by_fp.setdefault(rec.fingerprint, []).append(i)
        alert_ids = [0] * len(records)
        events: list[AlertEvent] = []
        unknown = [fp for fp in by_fp if fp not in self._firing] if self.shared else []
        if unknown:  # opened by the previous owner of a partition since this cache was loaded
            self._firing.update((row["fingerprint"], row) for row in repository.firing_alerts(conn, unknown))
        for fp, indices in by_fp.items():
            group = [records[i] for i in indices]
            latest = max(group, key=lambda r: r.ts)
            worst = max(_SEVERITY_RANK[r.severity] for r in group)
            alert = self._firing.get(fp)
            if alert is None:
                alert = self._open(conn, fp, group, latest, worst, now)
                events.append(AlertEvent.of("opened", alert))
            else:
                self._update(conn, alert, group, latest, worst, now)
                events.append(AlertEvent.of("updated", alert))
            for i in indices:
                alert_ids[i] = alert["id"]
        return alert_ids, events

    def resolve_quiet(self, conn: Connection, now: float) -> list[AlertEvent]:
        """Resolve alerts that saw no anomaly for `resolve_after_s`."""
        events = []
        for fp, alert in list(self._firing.items()):
            quiet = self.resolve_after_s * (self.flap_hold if alert.get("flapping") else 1.0)
            if alert["kind"] == "predictive":  # resolved by the forecast that no longer sees the risk; this is a backstop
                quiet = max(quiet, self.predictive_quiet_s)
            if now - alert["updated_at"] >= quiet:
                repository.update_alert(conn, alert["id"], {"state": "resolved", "resolved_at": now, "updated_at": now})
                del self._firing[fp]
                events.append(AlertEvent.of("resolved", alert))
        for fp in [fp for fp, opened in self._opened.items() if opened[-1] < now - self.flap_window_s]:
            del self._opened[fp]  # bounded memory: forget fingerprints that have been calm for a window
        return events

    def resolve(self, conn: Connection, fingerprints: Sequence[str], now: float) -> list[AlertEvent]:
        """Resolve these firing alerts now (a forecast no longer sees the risk); others are ignored."""
        events = []
        for fp in fingerprints:
            alert = self._firing.pop(fp, None)
            if alert is not None:
                repository.update_alert(conn, alert["id"], {"state": "resolved", "resolved_at": now, "updated_at": now})
                events.append(AlertEvent.of("resolved", alert))
        return events

    def firing_fingerprints(self, kind: str) -> set[str]:
        return {fp for fp, alert in self._firing.items() if alert["kind"] == kind}

    def _is_flapping(self, fp: str, now: float) -> bool:
        opened = self._opened.setdefault(fp, deque(maxlen=self.flap_opens))
        opened.append(now)
        return len(opened) >= self.flap_opens and now - opened[0] <= self.flap_window_s

    def _open(self, conn, fp, group, latest, worst, now) -> dict[str, Any]:
        name, labels = latest.alert_key or latest.key
        row = {
            "fingerprint": fp,
            "kind": latest.alert_kind,
            "series_id": latest.series_id,
            "state": "firing",
            "severity": _severity_name(worst),
            "summary": _summary(latest),
            "labels": {"__name__": name, **dict(labels)},
            "first_seen": min(r.ts for r in group),
            "last_seen": latest.ts,
            "updated_at": now,
            "resolved_at": None,
            "count": len(group),
            "details": _details(latest),
        }
        row["silenced_by"] = self._muted_by(row, now)
        row["flapping"] = self._is_flapping(fp, now)
        row["id"] = repository.insert_alert(conn, row)
        self._firing[fp] = row
        return row

    def _update(self, conn, alert, group, latest, worst, now) -> None:
        changes = {
            "severity": _severity_name(max(worst, _SEVERITY_RANK[alert["severity"]])),
            "summary": _summary(latest),
            "last_seen": max(alert["last_seen"], latest.ts),
            "updated_at": now,
            "count": alert["count"] + len(group),
            "details": _details(latest),
        }
        changes["silenced_by"] = self._muted_by({**alert, **changes}, now)  # a silence may have begun or ended
        repository.update_alert(conn, alert["id"], changes)
        alert.update(changes)


def _severity_name(rank: int) -> str:
    return "critical" if rank >= 2 else "warning"


def _summary(rec: AnomalyRecord) -> str:
    forecast = rec.explanation.get("forecast")
    if forecast is not None:
        name, labels = rec.key
        where = ",".join(f'{k}="{v}"' for k, v in labels)
        now, likely, earliest, latest = forecast["at"], forecast["likely"], forecast["earliest"], forecast["latest"]
        verb = "reaches" if forecast["direction"] == "up" else "falls to"
        when = f"in ~{fmt_duration(likely - now)}" if likely is not None else f"possibly, from ~{fmt_duration(earliest - now)}"
        span = f"between {fmt_duration(earliest - now)} and " + (fmt_duration(latest - now) if latest is not None else "beyond the horizon")
        return (f"{name}{{{where}}} {verb} {forecast['threshold']:.4g} {when} ({span}); now {fmt_value(rec.value)}, "
                f"forecast by {forecast['model']}")[:1024]
    logged = rec.explanation.get("log")
    if logged is not None and logged.get("new_template"):
        where = ",".join(f'{k}="{v}"' for k, v in rec.key[1] if k != "template_id")
        return f'new log template on {{{where}}}: "{logged["template"]}" (first seen after warm-up)'[:1024]
    entity = rec.explanation.get("entity")
    if entity is not None:
        where = ",".join(f'{k}="{v}"' for k, v in entity["labels"].items())
        top = ", ".join(f"{f} {share:.0%}" for f, share in list(entity["attributions"].items())[:3])
        return (f"{{{where}}} is unlike its peers ({entity['rule']}, score {rec.score:.3f}); "
                f"driven by {top}")[:1024]
    name, labels = rec.key
    where = ",".join(f'{k}="{v}"' for k, v in labels)
    return (
        f"{name}{{{where}}} = {fmt_value(rec.value)}, outside the expected band "
        f"{fmt_value(rec.lower)}..{fmt_value(rec.upper)} (expected {fmt_value(rec.expected)}; score {rec.score:.6f}, {rec.detector})"
    )[:1024]


def _details(rec: AnomalyRecord) -> dict[str, Any]:
    return {
        "ts": rec.ts,
        "value": rec.value,
        "expected": rec.expected,
        "lower": rec.lower,
        "upper": rec.upper,
        "score": rec.score,
        "detector": rec.detector,
        "explanation": rec.explanation,
    }
