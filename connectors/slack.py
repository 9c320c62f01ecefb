"""Slack incoming webhook: a readable message with the explanation an SRE needs at a glance.

Shapes from Slack's incoming-webhook documentation (summarized in shared/API-SHAPES.md §4.7): POST
JSON with `text` (mrkdwn, also the notification fallback) and `blocks`; the URL is the secret.
Success is 200 with the plain-text body `ok`; 400/403/404/410 (invalid_payload, action_prohibited,
no_service, channel_is_archived) are final; 429 (with Retry-After) and 5xx are retried.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import Field, SecretStr

from connectors._http import Outbound, RetrySettings

__all__ = ["SlackConfig", "SlackNotifier", "slack_message"]

_ICON = {"CRITICAL": ":red_circle:", "WARNING": ":large_orange_circle:", "RESOLVED": ":white_check_mark:",
         "ACKNOWLEDGED": ":eyes:", "REMEDIATING": ":hammer_and_wrench:"}
_SECTION_LIMIT = 3000  # characters of one section's text (Slack's documented maximum)


class SlackConfig(RetrySettings):
    webhook_url: SecretStr = Field(description="the incoming webhook's URL (it is the credential)")
    backoff_base_s: float = Field(1.0, ge=0)  # Slack allows about one message a second


def slack_message(headline: str, lines: list[str], link: str | None = None) -> dict[str, Any]:
    """`text` (the notification fallback) and `blocks` for a headline like `CRITICAL: …` and its lines."""
    status = headline.split(":", 1)[0]
    body = "\n".join(lines)
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{_ICON.get(status, '')} *{headline}*".strip()[:_SECTION_LIMIT]}},
    ]
    if body:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": body[:_SECTION_LIMIT]}})
    if link:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"<{link}|open in aiops>"}]})
    return {"text": headline, "blocks": blocks}


class SlackNotifier(Outbound):
    what = "Slack"

    def __init__(self, config: SlackConfig, **seams: Any) -> None:
        super().__init__(config, **seams)
        self.config: SlackConfig = config

    def send(self, message: dict[str, Any]) -> int:
        """Post a message (`slack_message`); returns the attempts it took."""
        _, attempts = self._post(
            self.config.webhook_url.get_secret_value(), json.dumps(message).encode(),
            lambda: {"Content-Type": "application/json"},
        )
        return attempts
