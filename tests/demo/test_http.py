"""The demo's one retry policy: a 503 or a transport error is retried with backoff, another refusal is not."""

from __future__ import annotations

import asyncio
import logging

import httpx

from aiops.demo._http import post_retrying

log = logging.getLogger("test.demo.http")


def _post(answers: list[int | Exception]) -> tuple[bool, list[bytes]]:
    seen: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.content)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return httpx.Response(answer, text="no")

    async def run() -> bool:
        async with httpx.AsyncClient(base_url="http://demo", transport=httpx.MockTransport(handler)) as client:
            return await post_retrying(client, "/v1/traces", {"resourceSpans": []}, 200, log, "failed", "/v1/traces")

    return asyncio.run(run()), seen


def test_a_503_and_a_transport_error_are_retried_until_accepted():
    ok, seen = _post([503, httpx.ConnectError("refused"), 200])
    assert ok and seen == [b'{"resourceSpans":[]}'] * 3


def test_another_refusal_is_logged_once_and_not_retried(caplog):
    with caplog.at_level(logging.ERROR, logger="test.demo.http"):
        ok, seen = _post([400])
    assert not ok and len(seen) == 1
    assert caplog.messages == ["/v1/traces answered 400: no"]
