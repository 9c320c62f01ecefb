"""Receivers: named sets of integrations (webhooks, Slack channels, PagerDuty services) that deliver payloads.

A payload (see `aiops.explain`) is the same for every integration; each turns it into what its
system expects: the webhook posts it as JSON (or through its template), Slack shows the rendered
explanation, PagerDuty triggers, acknowledges or resolves by the notification's subject as dedup key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiops.explain import render
from aiops.settings import ReceiverSpec
from connectors import PagerDutyNotifier, SlackNotifier, WebhookNotifier
from connectors.slack import slack_message

__all__ = ["Receivers"]

_PD_SEVERITY = {"critical": "critical", "warning": "warning"}


class Receivers:
    """The configured receivers, each integration built once; `seams` (client, sleep, clock, rng) go to every connector."""

    def __init__(self, specs: Sequence[ReceiverSpec], **seams: Any) -> None:
        self._integrations: dict[str, dict[str, Any]] = {}
        for spec in specs:
            built: dict[str, Any] = {}
            built.update({f"webhook:{i}": WebhookNotifier(c, **seams) for i, c in enumerate(spec.webhook)})
            built.update({f"slack:{i}": SlackNotifier(c, **seams) for i, c in enumerate(spec.slack)})
            built.update({f"pagerduty:{i}": PagerDutyNotifier(c, **seams) for i, c in enumerate(spec.pagerduty)})
            self._integrations[spec.name] = built

    def __contains__(self, receiver: str) -> bool:
        return receiver in self._integrations

    def integrations(self, receiver: str) -> list[str]:
        return list(self._integrations.get(receiver, {}))

    def deliver(self, receiver: str, integration: str, action: str, subject: str, payload: dict[str, Any],
                idempotency_key: str) -> None:
        """Send one notification; connector errors (retries exhausted, refused) propagate to the outbox."""
        target = self._integrations[receiver][integration]
        if isinstance(target, WebhookNotifier):
            target.send(payload, idempotency_key)
        elif isinstance(target, SlackNotifier):
            headline, *lines = render(payload)
            target.send(slack_message(headline, lines, payload.get("link")))
        elif action == "trigger":
            target.trigger(
                subject,
                render(payload)[0],
                payload["source"],
                _PD_SEVERITY.get(payload["severity"], "error"),
                event_class=payload["kind"],
                custom_details={"explanation": payload["text"], "alerts": payload["alerts"][:20]},
                links=[{"href": payload["link"], "text": "open in aiops"}] if payload.get("link") else None,
            )
        elif action == "acknowledge":
            target.acknowledge(subject)
        else:
            target.resolve(subject)
