"""A programmable HTTP receiver on loopback, for contract tests of outbound connectors.

It answers queued responses in order (status, headers, body, and an optional delay to provoke
client timeouts), then 200, and logs every request (method, path, headers, body) for assertions.
Status and Retry-After semantics follow RFC 9110 (HTTP Semantics): 408 and 429 invite a retry,
Retry-After is delta-seconds or an HTTP-date (§10.2.3); other 4xx are the client's fault.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from emulators._loopback import LoopbackServer, reply


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"{}"
    delay_s: float = 0.0


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class HttpReceiver(LoopbackServer):
    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the stdlib's naming
                length = int(self.headers.get("content-length", 0))
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.requests.append(Request("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                    answer = receiver.replies.pop(0) if receiver.replies else Reply()
                if answer.delay_s:
                    time.sleep(answer.delay_s)
                reply(self, answer.status, answer.body, "application/json", answer.headers)

        super().__init__(Handler)
        self.url = self.base
