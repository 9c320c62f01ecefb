"""What every emulator shares: a threaded HTTP server on a free loopback port, and a reply helper."""

from __future__ import annotations

import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def reply(handler: BaseHTTPRequestHandler, status: int, data: bytes, content_type: str, headers: dict | None = None) -> None:
    handler.send_response(status)
    for key, value in (headers or {}).items():
        handler.send_header(key, value)
    handler.send_header("content-type", content_type)
    handler.send_header("content-length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # the client gave up first, as tests of client timeouts make it do
        super().handle_error(request, client_address)


class LoopbackServer:
    """Serves `handler_class` on 127.0.0.1 while used as a context manager; `base` is its URL."""

    def __init__(self, handler_class: type[BaseHTTPRequestHandler]) -> None:
        handler_class.log_message = lambda *args: None  # keep test output clean
        self._server = _Server(("127.0.0.1", 0), handler_class)
        self.base = f"http://127.0.0.1:{self._server.server_address[1]}"
        # a short poll interval: shutdown() waits for the next poll, and tests start and stop many servers
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
