"""The bus between ingest and the pipeline: named topics of bounded queues.

Bounded on purpose: when detection falls behind, publishers are told so (`try_publish` returns False,
`publish` raises `BusFull` after its timeout) instead of memory growing without limit. The HTTP
ingest answers 503 with Retry-After in that case. In `server.mode: api-only` the ingest produces to
Kafka instead (ingest.kafka_bus.MetricProducer) and answers a full producer buffer the same way.
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Protocol

__all__ = ["Bus", "BusFull", "InProcessBus"]


class BusFull(Exception):
    """A topic stayed full for longer than the publisher was willing to wait."""


class Bus(Protocol):
    def try_publish(self, topic: str, item: Any) -> bool: ...

    def publish(self, topic: str, item: Any, timeout: float | None = None) -> None: ...

    def consume(self, topic: str, max_items: int, timeout: float) -> list[Any]: ...

    def depth(self, topic: str) -> int: ...

    def capacity(self, topic: str) -> int: ...


class InProcessBus:
    """Topics as `queue.Queue`s of at most `max_items` items each, created on first use."""

    def __init__(self, max_items: int = 256) -> None:
        if max_items < 1:
            raise ValueError(f"max_items must be at least 1, got {max_items}")
        self.max_items = max_items
        self._topics: dict[str, queue.Queue] = {}
        self._lock = threading.Lock()

    def _topic(self, topic: str) -> queue.Queue:
        q = self._topics.get(topic)
        if q is None:
            with self._lock:
                q = self._topics.setdefault(topic, queue.Queue(self.max_items))
        return q

    def try_publish(self, topic: str, item: Any) -> bool:
        try:
            self._topic(topic).put_nowait(item)
            return True
        except queue.Full:
            return False

    def publish(self, topic: str, item: Any, timeout: float | None = None) -> None:
        try:
            self._topic(topic).put(item, timeout=timeout)
        except queue.Full:
            raise BusFull(f"topic {topic!r} stayed full for {timeout} s") from None

    def consume(self, topic: str, max_items: int, timeout: float) -> list[Any]:
        """Up to `max_items` items, waiting at most `timeout` seconds for the first one."""
        q = self._topic(topic)
        try:
            items = [q.get(timeout=timeout)]
        except queue.Empty:
            return []
        while len(items) < max_items:
            try:
                items.append(q.get_nowait())
            except queue.Empty:
                break
        return items

    def depth(self, topic: str) -> int:
        return self._topic(topic).qsize()

    def capacity(self, topic: str) -> int:
        return self.max_items
