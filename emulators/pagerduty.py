"""PagerDuty Events API v2 emulator on loopback (`POST /v2/enqueue`).

Request and response shapes per PagerDuty's developer docs, "Events API v2 Overview" and the
send-event reference (collected with their sources in shared/API-SHAPES.md §4.6): the body carries a
32-character `routing_key`; `event_action` is trigger | acknowledge | resolve; `dedup_key` is at
most 255 characters and required for acknowledge and resolve; a trigger's `payload` needs
`summary` (≤ 1024), `source` and `severity` (critical | error | warning | info). Answers 202
`{"status": "success", "message": "Event processed", "dedup_key": …}`, or 400
`{"status": "invalid event", "message": "Event object is invalid", "errors": [...]}`. Faults (429,
5xx) can be queued. Alerts are kept by dedup key with their state, for assertions.
"""

from __future__ import annotations

import json
import uuid
from http.server import BaseHTTPRequestHandler

from emulators._loopback import LoopbackServer, reply


class PagerDutyEmulator(LoopbackServer):
    def __init__(self) -> None:
        self.faults: list[tuple[int, dict[str, str]]] = []
        self.events: list[dict] = []
        self.alerts: dict[str, str] = {}  # dedup_key → triggered | acknowledged | resolved
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if self.path != "/v2/enqueue":
                    return self._reply(404, {"status": "not found"})
                if emulator.faults:
                    status, headers = emulator.faults.pop(0)
                    return self._reply(status, {"status": "error"}, headers)
                try:
                    event = json.loads(body)
                except ValueError:
                    return self._reply(400, {"status": "invalid event", "message": "Event object is invalid", "errors": ["not JSON"]})
                errors = _validate(event)
                if errors:
                    return self._reply(400, {"status": "invalid event", "message": "Event object is invalid", "errors": errors})
                key = event.get("dedup_key") or uuid.uuid4().hex
                emulator.events.append(event)
                emulator.alerts[key] = {"trigger": "triggered", "acknowledge": "acknowledged", "resolve": "resolved"}[
                    event["event_action"]
                ]
                self._reply(202, {"status": "success", "message": "Event processed", "dedup_key": key})

            def _reply(self, status: int, body: dict, headers: dict | None = None) -> None:
                reply(self, status, json.dumps(body).encode(), "application/json", headers)

        super().__init__(Handler)
        self.url = self.base + "/v2/enqueue"


def _validate(event: dict) -> list[str]:
    errors = []
    if not isinstance(event.get("routing_key"), str) or len(event["routing_key"]) != 32:
        errors.append("'routing_key' must be a 32 character integration key")
    action = event.get("event_action")
    if action not in ("trigger", "acknowledge", "resolve"):
        errors.append("'event_action' must be one of trigger, acknowledge, resolve")
    key = event.get("dedup_key")
    if key is not None and (not isinstance(key, str) or len(key) > 255):
        errors.append("'dedup_key' must be a string of at most 255 characters")
    if action in ("acknowledge", "resolve") and not key:
        errors.append("'dedup_key' is required for acknowledge and resolve")
    if action == "trigger":
        payload = event.get("payload") or {}
        if not payload.get("summary") or len(payload["summary"]) > 1024:
            errors.append("'payload.summary' is required, at most 1024 characters")
        if not payload.get("source"):
            errors.append("'payload.source' is required")
        if payload.get("severity") not in ("critical", "error", "warning", "info"):
            errors.append("'payload.severity' must be critical, error, warning or info")
    return errors
