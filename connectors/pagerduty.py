"""PagerDuty Events API v2: trigger, acknowledge and resolve an alert by its dedup key.

Shapes from PagerDuty's Events API v2 documentation (summarized in shared/API-SHAPES.md §4.6):
`POST /v2/enqueue` with the integration's 32-character `routing_key` in the body (no auth header),
`event_action` trigger | acknowledge | resolve, `dedup_key` (≤ 255 characters) tying the three
together, and for a trigger a `payload` with `summary` (≤ 1024), `source` and `severity` (critical |
error | warning | info). The answer is 202 `{"status": "success", "dedup_key": …}`; 400 means an
invalid event (not retried), 429 and 5xx are retried.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from connectors._http import RetryPolicy, post_with_retries

__all__ = ["PagerDutyConfig", "PagerDutyNotifier"]

Severity = Literal["critical", "error", "warning", "info"]


class PagerDutyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    routing_key: SecretStr = Field(min_length=32, max_length=32)
    url: str = Field("https://events.pagerduty.com/v2/enqueue", pattern=r"^https?://")
    timeout_s: float = Field(5.0, gt=0, le=60)
    max_attempts: int = Field(4, ge=1, le=10)
    backoff_base_s: float = Field(0.5, ge=0)
    backoff_max_s: float = Field(30.0, ge=0)


class PagerDutyNotifier:
    def __init__(
        self,
        config: PagerDutyConfig,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.client = client or httpx.Client()
        self.sleep = sleep
        self.clock = clock
        self.rng = rng or random.Random()

    def trigger(
        self,
        dedup_key: str,
        summary: str,
        source: str,
        severity: Severity,
        component: str | None = None,
        group: str | None = None,
        event_class: str | None = None,
        custom_details: dict[str, Any] | None = None,
        links: list[dict[str, str]] | None = None,
    ) -> str:
        payload: dict[str, Any] = {
            "summary": summary[:1024],
            "source": source,
            "severity": severity,
            "timestamp": datetime.fromtimestamp(self.clock(), timezone.utc).isoformat().replace("+00:00", "Z"),
        }
        for key, value in (("component", component), ("group", group), ("class", event_class),
                           ("custom_details", custom_details)):
            if value is not None:
                payload[key] = value
        event: dict[str, Any] = {"event_action": "trigger", "dedup_key": dedup_key[:255], "payload": payload, "client": "aiops"}
        if links:
            event["links"] = links
        return self._send(event)

    def acknowledge(self, dedup_key: str) -> str:
        return self._send({"event_action": "acknowledge", "dedup_key": dedup_key[:255]})

    def resolve(self, dedup_key: str) -> str:
        return self._send({"event_action": "resolve", "dedup_key": dedup_key[:255]})

    def _send(self, event: dict[str, Any]) -> str:
        body = json.dumps({"routing_key": self.config.routing_key.get_secret_value(), **event}).encode()
        policy = RetryPolicy(self.config.timeout_s, self.config.max_attempts, self.config.backoff_base_s,
                             self.config.backoff_max_s)
        response, _ = post_with_retries(
            self.client, self.config.url, body, lambda: {"Content-Type": "application/json"}, policy,
            self.sleep, self.clock, self.rng, "PagerDuty",
        )
        return response.json().get("dedup_key", event["dedup_key"])
