"""The Slack notifier against the incoming-webhook emulator: a readable message, errors, retries."""

from __future__ import annotations

import random

import pytest
from emulators.slack import SlackEmulator

from connectors import PermanentDeliveryError
from connectors.slack import SlackConfig, SlackNotifier, slack_message

HEADLINE = "CRITICAL: 1 firing [cluster=eu-1]: http_request_duration_seconds"
LINES = [
    "- http_request_duration_seconds on host=checkout-2, service=checkout: seen 0.8, expected 0.2 (normal 0.15..0.25)",
    "  why: level 0.93, range 0.9",
]


def _message(link: str | None = None) -> dict:
    return slack_message(HEADLINE, LINES, link)


@pytest.fixture
def slack():
    with SlackEmulator() as emulator:
        yield emulator


def _notifier(url: str) -> tuple[SlackNotifier, list[float]]:
    slept: list[float] = []
    return SlackNotifier(SlackConfig(webhook_url=url), sleep=slept.append, rng=random.Random(0)), slept


def test_the_message_carries_headline_lines_and_link(slack):
    notifier, _ = _notifier(slack.url)
    assert notifier.send(_message(link="http://127.0.0.1:8080/api/v1/incidents/4")) == 1
    message = slack.messages[0]
    assert message["text"] == HEADLINE  # what phones and screen readers show
    assert message["blocks"][0]["text"]["text"] == f":red_circle: *{HEADLINE}*"
    assert message["blocks"][1]["text"]["text"] == "\n".join(LINES)
    assert "<http://127.0.0.1:8080/api/v1/incidents/4|open in aiops>" == message["blocks"][2]["elements"][0]["text"]


def test_long_explanations_are_cut_to_slacks_section_limit(slack):
    notifier, _ = _notifier(slack.url)
    notifier.send(slack_message(HEADLINE, ["x" * 80] * 100))
    assert len(slack.messages[0]["blocks"][1]["text"]["text"]) == 3000


def test_revoked_and_archived_webhooks_are_permanent(slack):
    notifier, slept = _notifier(slack.base + "/services/T000/B000/WRONG")
    with pytest.raises(PermanentDeliveryError, match="no_service"):
        notifier.send(_message())
    slack.faults = [(410, "channel_is_archived", {})]
    notifier, slept = _notifier(slack.url)
    with pytest.raises(PermanentDeliveryError, match="channel_is_archived"):
        notifier.send(_message())
    assert slept == []


def test_rate_limit_is_retried_after_the_given_delay(slack):
    slack.faults = [(429, "rate_limited", {"Retry-After": "1"})]
    notifier, slept = _notifier(slack.url)
    assert notifier.send(_message()) == 2 and slept == [1.0] and len(slack.messages) == 1
