"""Slack incoming webhook: a readable message with the explanation an SRE needs at a glance.

Shapes from Slack's incoming-webhook documentation (summarized in shared/API-SHAPES.md §4.7): POST
JSON with `text` (mrkdwn, also the notification fallback) and `blocks`; the URL is the secret.
Success is 200 with the plain-text body `ok`; 400/403/404/410 (invalid_payload, action_prohibited,
no_service, channel_is_archived) are final; 429 (with Retry-After) and 5xx are retried.
"""

from __future__ import annotations

import json
import time
from typing import Any

from pydantic import Field, SecretStr

from connectors._http import Outbound, RetrySettings

__all__ = ["SlackConfig", "SlackNotifier", "slack_message"]

_ICON = {"critical": ":red_circle:", "warning": ":large_orange_circle:", "resolved": ":white_check_mark:"}


class SlackConfig(RetrySettings):
    webhook_url: SecretStr = Field(description="the incoming webhook's URL (it is the credential)")
    backoff_base_s: float = Field(1.0, ge=0)  # Slack allows about one message a second


def _fmt(x: Any) -> str:
    return f"{x:.4g}" if isinstance(x, (int, float)) else str(x)


def slack_message(alert: dict[str, Any], link: str | None = None) -> dict[str, Any]:
    """`text` and `blocks` for an alert row: what, where, expected vs seen, since when, which detectors."""
    state = "resolved" if alert.get("state") == "resolved" else alert["severity"]
    labels = {k: v for k, v in alert["labels"].items() if k != "__name__"}
    where = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))
    name = alert["labels"].get("__name__", "alert")
    details = alert.get("details", {})
    headline = f"{_ICON.get(state, '')} *{state.upper()}* {name} on {where}"
    seen = (
        f"seen *{_fmt(details.get('value'))}*, expected {_fmt(details.get('expected'))} "
        f"(band {_fmt(details.get('lower'))}..{_fmt(details.get('upper'))})"
        if details.get("value") is not None else alert.get("summary", "")
    )
    detectors = details.get("explanation", {}).get("detectors", {})
    why = ", ".join(f"{d} {_fmt(s)}" for d, s in sorted(detectors.items(), key=lambda kv: -kv[1])) or details.get("detector", "")
    since = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(alert["first_seen"]))
    context = [f"since {since}", f"{alert.get('count', 1)} anomalies", f"score {_fmt(details.get('score', 0))}"]
    if alert.get("silenced_by"):
        context.append(f"muted by {alert['silenced_by']}")
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{headline}\n{seen}\nwhy: {why}"}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(context)}]},
    ]
    if link:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"<{link}|open in aiops>"}]})
    return {"text": f"{state.upper()} {name} on {where}: {seen}", "blocks": blocks}


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
