"""Posting the demo's generated requests to the service: one retry policy for metrics, logs and traces.

A 503 (the pipeline saturated, OTLP/HTTP "Throttling") or a transport error is retried with exponential
backoff, five attempts in all; any other refusal is logged once and the request dropped (a demo only).
"""

from __future__ import annotations

import asyncio
import logging

import httpx

__all__ = ["post_retrying"]


async def post_retrying(client: httpx.AsyncClient, path: str, body: object, accepted: int, log: logging.Logger,
                        failed: str, refused: str) -> bool:
    """POST `body` as JSON until answered `accepted`; whether it was. `failed`/`refused` start the log lines."""
    for attempt in range(5):
        try:
            response = await client.post(path, json=body)
        except httpx.HTTPError as exc:
            log.warning("%s: %r", failed, exc)
        else:
            if response.status_code == accepted:
                return True
            if response.status_code != 503:
                log.error("%s answered %s: %s", refused, response.status_code, response.text[:300])
                return False
        await asyncio.sleep(0.2 * 2**attempt)
    return False
