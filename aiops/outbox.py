"""The notification outbox: notifications are written to the store with the change that caused them,
and a sender thread delivers them, so a crash or an unreachable receiver loses nothing.

- One row per message and integration, keyed by an idempotency key derived from what the message
  is (its receiver, subject, reason and alerts): writing the same message twice (after a restart,
  say) is a no-op, and the key travels as the webhook's `Idempotency-Key` so receivers can drop
  repeats too.
- Delivery order is kept per (receiver, integration, subject): a PagerDuty resolve never overtakes
  the trigger it resolves.
- A delivery whose retries are exhausted is tried again later with backoff (`rounds` times in
  all); a refusal (4xx) or a receiver no longer configured fails it at once. Either way the row
  keeps the error for `GET /api/v1/notifications`.
- Several processes may run a sender (every Kafka worker, `aiops executor`): a row is claimed before
  it is sent, by moving its `next_attempt_at` `lease_s` ahead in a compare-and-set, so one process
  sends it; the others see it as not yet due, which also holds back the rest of its stream. A process
  that dies mid-delivery leaves the row to be sent again once the lease runs out (at least once).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from aiops.receivers import Receivers
from aiops.store import StoreEngine
from aiops.store.schema import notifications
from connectors import ConnectorError, PermanentDeliveryError, RetriesExhausted

__all__ = ["Outbox", "idempotency_key"]

log = logging.getLogger(__name__)


def idempotency_key(*parts: Any) -> str:
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:48]


class Outbox:
    def __init__(
        self,
        store: StoreEngine,
        receivers: Receivers,
        clock: Callable[[], float] = time.time,
        rounds: int = 5,
        round_backoff_s: float = 60.0,
        on_outcome: Callable[[str, str], None] | None = None,
        lease_s: float = 300.0,
    ) -> None:
        self.store = store
        self.receivers = receivers
        self.clock = clock
        self.rounds = rounds
        self.round_backoff_s = round_backoff_s
        self.lease_s = lease_s  # longer than a delivery with all its retries (about 25 s by default)
        self.on_outcome = on_outcome or (lambda receiver, outcome: None)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- writing (in the caller's transaction) ------------------------------------------------------

    def enqueue(
        self,
        conn: Connection,
        *,
        receiver: str,
        action: str,
        reason: str,
        subject: str,
        payload: dict[str, Any],
        key: tuple[Any, ...],
        now: float,
        incident_id: int | None = None,
    ) -> int:
        """Write one row per integration of `receiver`; returns how many were new."""
        added = 0
        for integration in self.receivers.integrations(receiver):
            ikey = idempotency_key(receiver, integration, action, subject, *key)
            if conn.execute(select(notifications.c.id).where(notifications.c.idempotency_key == ikey)).first():
                continue
            row = {
                "idempotency_key": ikey, "created_at": now, "receiver": receiver, "integration": integration,
                "action": action, "reason": reason, "subject": subject, "incident_id": incident_id,
                "payload": payload, "state": "pending", "attempts": 0, "next_attempt_at": now,
                "sent_at": None, "last_error": None,
            }
            try:
                with conn.begin_nested():
                    conn.execute(insert(notifications), [row])
            except IntegrityError:  # written meanwhile by another thread: the same message
                continue
            added += 1
        if added:
            self._wake.set()
        return added

    # -- delivering ---------------------------------------------------------------------------------

    def start(self, poll_s: float = 1.0) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(poll_s,), name="aiops-outbox", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self, poll_s: float) -> None:
        while not self._stop.is_set():
            try:
                self.deliver_due()
            except Exception:  # keep delivering; the store may be briefly unavailable
                log.exception("outbox pass failed")
            self._wake.wait(poll_s)
            self._wake.clear()

    def deliver_due(self, limit: int = 200) -> int:
        """Deliver pending rows whose time has come, oldest first; returns how many were attempted."""
        now = self.clock()
        with self.store.begin() as conn:
            rows = [dict(r._mapping) for r in conn.execute(
                select(notifications).where(notifications.c.state == "pending").order_by(notifications.c.id).limit(limit)
            )]
        blocked: set[tuple[str, str, str]] = set()
        attempted = 0
        for row in rows:
            stream = (row["receiver"], row["integration"], row["subject"])
            if stream in blocked or row["next_attempt_at"] > now:
                blocked.add(stream)  # later messages of this stream wait for this one
                continue
            if not self._claim(row, now):  # another process is sending it
                blocked.add(stream)
                continue
            attempted += 1
            changes = self._attempt(row)
            with self.store.begin() as conn:
                conn.execute(update(notifications).where(notifications.c.id == row["id"]).values(**changes))
            if changes.get("state") != "sent":
                blocked.add(stream)
        return attempted

    def _claim(self, row: dict[str, Any], now: float) -> bool:
        with self.store.begin() as conn:
            return conn.execute(update(notifications).where(
                notifications.c.id == row["id"], notifications.c.state == "pending",
                notifications.c.next_attempt_at == row["next_attempt_at"],
            ).values(next_attempt_at=now + self.lease_s)).rowcount == 1

    def _attempt(self, row: dict[str, Any]) -> dict[str, Any]:
        attempts = row["attempts"] + 1
        receiver = row["receiver"]
        if receiver not in self.receivers or row["integration"] not in self.receivers.integrations(receiver):
            return self._failed(row, attempts, f"receiver {receiver!r} ({row['integration']}) is no longer configured")
        try:
            self.receivers.deliver(receiver, row["integration"], row["action"], row["subject"], row["payload"],
                                   row["idempotency_key"])
        except RetriesExhausted as exc:
            if attempts >= self.rounds:
                return self._failed(row, attempts, str(exc))
            self.on_outcome(receiver, "retry")
            delay = self.round_backoff_s * 2 ** (attempts - 1)
            log.warning("notification %s to %s will be retried in %.0f s: %s", row["id"], receiver, delay, exc)
            return {"attempts": attempts, "next_attempt_at": self.clock() + delay, "last_error": str(exc)[:1024]}
        except (PermanentDeliveryError, ConnectorError) as exc:
            return self._failed(row, attempts, str(exc))
        self.on_outcome(receiver, "sent")
        return {"state": "sent", "attempts": attempts, "sent_at": self.clock(), "last_error": None}

    def _failed(self, row: dict[str, Any], attempts: int, error: str) -> dict[str, Any]:
        self.on_outcome(row["receiver"], "failed")
        log.error("notification %s to %s failed: %s", row["id"], row["receiver"], error)
        return {"state": "failed", "attempts": attempts, "last_error": error[:1024]}
