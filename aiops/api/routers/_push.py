"""What every push route shares: reading a body under a size limit, and publishing to the bus with backpressure.

Used by POST /api/v1/metrics (`ingest`) and POST /v1/metrics, /v1/logs, /v1/traces (`otlp_http`), so all
answer a full pipeline the same way: wait up to `server.ingest_wait_s` for room, then 503 with Retry-After.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

from aiops.pipeline import METRICS_TOPIC, IngestItem
from aiops.service import Service
from ingest.bus import BusFull

__all__ = ["BodyTooLarge", "publish", "read_limited", "wait_for_room"]

log = logging.getLogger(__name__)


class BodyTooLarge(Exception):
    """The body (declared or read so far) is larger than the limit."""


async def read_limited(chunks: AsyncIterator[bytes], declared: str | None, limit: int) -> bytes:
    """The whole body, refusing it as soon as it (or its Content-Length) passes `limit` bytes."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    parts = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        parts.append(chunk)
    return b"".join(parts)


async def publish(service: Service, item: IngestItem, wait_s: float) -> bool:
    """Put the item on the bus, waiting (without blocking the event loop) for room up to `wait_s`.

    In `server.mode: api-only` the bus is Kafka: the producer (in a thread: it may wait up to `wait_s`
    for buffer space) splits the batch by partition; a full buffer or an unreachable broker is False.
    """
    if service.producer is not None:
        from ingest.kafka_bus import KafkaBusError

        try:
            await asyncio.to_thread(service.producer.send, item.batch)
            return True
        except (BusFull, KafkaBusError) as exc:
            log.warning("ingest not produced to Kafka: %s", exc)
            return False
    return await _eventually(lambda: service.bus.try_publish(METRICS_TOPIC, item), wait_s)


async def wait_for_room(service: Service, wait_s: float) -> bool:
    """Whether the bus has room, waiting for it (without blocking the event loop) up to `wait_s`.

    For routes that must not keep anything of a request they then refuse (logs are mined, spans folded
    into a trace monitor): they check for room first and answer 503 before changing any state.
    """
    bus = service.bus
    return await _eventually(lambda: bus.depth(METRICS_TOPIC) < bus.capacity(METRICS_TOPIC), wait_s)


async def _eventually(attempt: Callable[[], bool], wait_s: float) -> bool:
    """Whether `attempt()` succeeds within `wait_s`: tried at once, then after sleeps of 1 ms doubling to 50 ms."""
    if attempt():
        return True
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    delay = 0.001
    while loop.time() < deadline:
        await asyncio.sleep(delay)
        if attempt():
            return True
        delay = min(delay * 2, 0.05)
    return False


async def produce(send: Callable[[object], int], items: object, what: str) -> bool:
    """api-only: `items` to their Kafka topic through `send` (a producer's, in a thread: it may wait for
    buffer space); False when the buffer stayed full or the broker failed (the caller answers 503)."""
    from ingest.kafka_bus import KafkaBusError

    try:
        await asyncio.to_thread(send, items)
        return True
    except (BusFull, KafkaBusError) as exc:
        log.warning("%s not produced to Kafka: %s", what, exc)
        return False
