"""Silences: label matchers with a start and an end; a matching alert is recorded but muted.

Silences come from the settings file (`alerting.silences`, replaced on reload) and from the API
(stored, so they survive a restart). Maintenance windows (`alerting.maintenance`) are silences that
recur on chosen weekdays at a UTC time of day. The book is consulted whenever an alert opens or is updated;
the alert keeps the id of the silence that muted it (`api:12`, `config:0`), so an SRE can always
see what was silenced and why, and notifications (a later issue) skip it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from aiops.matchers import Selector, parse_selector
from aiops.settings import MaintenanceWindow, SilenceSpec

__all__ = ["Silence", "SilenceBook"]


@dataclass(frozen=True)
class Silence:
    id: str
    selector: Selector
    starts_at: float
    ends_at: float
    comment: str

    def mutes(self, labels: Mapping[str, str], now: float) -> bool:
        if not self.starts_at <= now < self.ends_at:
            return False
        return self.selector.matches_labels(labels)


_DAY = 86400.0
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class _Window:
    id: str
    selector: Selector
    weekdays: frozenset[int]  # 0 = Monday
    start_s: float  # seconds after UTC midnight
    duration_s: float

    def mutes(self, labels: Mapping[str, str], now: float) -> bool:
        midnight = now - now % _DAY
        for days_back in range(int(self.duration_s // _DAY) + 2):  # windows may run past midnight
            day = midnight - days_back * _DAY
            weekday = int((day // _DAY + 3) % 7)  # 1970-01-01 was a Thursday
            begins = day + self.start_s
            if weekday in self.weekdays and begins <= now < begins + self.duration_s:
                return self.selector.matches_labels(labels)
        return False


class SilenceBook:
    def __init__(self, configured: Iterable[SilenceSpec] = (), maintenance: Iterable[MaintenanceWindow] = ()) -> None:
        self._lock = threading.Lock()
        self._configured: list[Silence | _Window] = []
        self._stored: dict[str, Silence] = {}
        self.configure(configured, maintenance)

    def configure(self, configured: Iterable[SilenceSpec], maintenance: Iterable[MaintenanceWindow] = ()) -> None:
        """Replace the silences and maintenance windows that come from the settings file."""
        silences: list[Silence | _Window] = [
            Silence(f"config:{i}", parse_selector(s.selector), s.starts_at.timestamp(), s.ends_at.timestamp(), s.comment)
            for i, s in enumerate(configured)
        ]
        for w in maintenance:
            hours, minutes = (int(p) for p in w.start.split(":"))
            days = frozenset(_WEEKDAYS.index(d) for d in w.weekdays)
            silences.append(_Window(f"maintenance:{w.name}", parse_selector(w.selector), days, hours * 3600.0 + minutes * 60.0, w.duration_s))
        with self._lock:
            self._configured = silences

    def put(self, silence_id: int, selector: str, starts_at: float, ends_at: float, comment: str) -> None:
        """Add or update a stored (API) silence."""
        with self._lock:
            self._stored[f"api:{silence_id}"] = Silence(f"api:{silence_id}", parse_selector(selector), starts_at, ends_at, comment)

    def match(self, labels: Mapping[str, str], now: float) -> str | None:
        """The id of a silence muting an alert with these labels now, else None."""
        with self._lock:
            candidates = self._configured + list(self._stored.values())
        for silence in candidates:
            if silence.mutes(labels, now):
                return silence.id
        return None
