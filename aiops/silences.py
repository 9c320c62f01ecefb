"""Silences: label matchers with a start and an end; a matching alert is recorded but muted.

Silences come from the settings file (`alerting.silences`, replaced on reload) and from the API
(stored, so they survive a restart). The book is consulted whenever an alert opens or is updated;
the alert keeps the id of the silence that muted it (`api:12`, `config:0`), so an SRE can always
see what was silenced and why, and notifications (a later issue) skip it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from aiops.matchers import Selector, parse_selector
from aiops.settings import SilenceSpec

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
        plain = {k: v for k, v in labels.items() if k != "__name__"}
        return self.selector.matches(labels.get("__name__", ""), plain)


class SilenceBook:
    def __init__(self, configured: Iterable[SilenceSpec] = ()) -> None:
        self._lock = threading.Lock()
        self._configured: list[Silence] = []
        self._stored: dict[str, Silence] = {}
        self.configure(configured)

    def configure(self, configured: Iterable[SilenceSpec]) -> None:
        """Replace the silences that come from the settings file."""
        silences = [
            Silence(f"config:{i}", parse_selector(s.selector), s.starts_at.timestamp(), s.ends_at.timestamp(), s.comment)
            for i, s in enumerate(configured)
        ]
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
