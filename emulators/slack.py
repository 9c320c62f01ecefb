"""Slack incoming-webhook emulator on loopback (`POST /services/T…/B…/…`).

Per Slack's incoming-webhook docs and its 2016-05-17 changelog on webhook error conditions (collected
in shared/API-SHAPES.md §4.7): success is 200 with the plain-text body `ok`; errors are plain text:
400 `invalid_payload` (not JSON), 400 `no_text` (neither text nor blocks), 400 `invalid_blocks` (also for a section text over
3,000 characters, Block Kit's limit for a section's text object),
404 `no_service` (unknown or revoked webhook), 410 `channel_is_archived`; 429 with Retry-After when
rate limited. Faults can be queued; accepted messages are kept for assertions.
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler

from emulators._loopback import LoopbackServer, reply

PATH = "/services/T000/B000/hooksecret"


class SlackEmulator(LoopbackServer):
    def __init__(self) -> None:
        self.faults: list[tuple[int, str, dict[str, str]]] = []
        self.messages: list[dict] = []
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if self.path != PATH:
                    return self._reply(404, "no_service")
                if emulator.faults:
                    status, text, headers = emulator.faults.pop(0)
                    return self._reply(status, text, headers)
                try:
                    message = json.loads(body)
                except ValueError:
                    return self._reply(400, "invalid_payload")
                if not message.get("text") and not message.get("blocks"):
                    return self._reply(400, "no_text")
                blocks = message.get("blocks", [])
                if not isinstance(blocks, list) or any(not isinstance(b, dict) or "type" not in b for b in blocks):
                    return self._reply(400, "invalid_blocks")
                if any(len(b.get("text", {}).get("text", "")) > 3000 for b in blocks):  # Block Kit: section text ≤ 3000
                    return self._reply(400, "invalid_blocks")
                emulator.messages.append(message)
                self._reply(200, "ok")

            def _reply(self, status: int, text: str, headers: dict | None = None) -> None:
                reply(self, status, text.encode(), "text/plain", headers)

        super().__init__(Handler)
        self.url = self.base + PATH
