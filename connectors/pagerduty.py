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
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import Field, SecretStr

from connectors._http import Outbound, RetrySettings

__all__ = ["PagerDutyConfig", "PagerDutyNotifier"]

Severity = Literal["critical", "error", "warning", "info"]


class PagerDutyConfig(RetrySettings):
    routing_key: SecretStr = Field(min_length=32, max_length=32)
    url: str = Field("https://events.pagerduty.com/v2/enqueue", pattern=r"^https?://")


class PagerDutyNotifier(Outbound):
    what = "PagerDuty"

    def __init__(self, config: PagerDutyConfig, **seams: Any) -> None:
        super().__init__(config, **seams)
        self.config: PagerDutyConfig = config

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
        response, _ = self._post(self.config.url, body, lambda: {"Content-Type": "application/json"})
        return response.json().get("dedup_key", event["dedup_key"])
