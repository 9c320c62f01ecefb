"""The Slack notifier against the incoming-webhook emulator: a readable message, errors, retries."""

from __future__ import annotations

import random

import pytest
from emulators.slack import SlackEmulator

from connectors import PermanentDeliveryError
from connectors.slack import SlackConfig, SlackNotifier, slack_message

ALERT = {
    "state": "firing",
    "severity": "critical",
    "labels": {"__name__": "http_request_duration_seconds", "service": "checkout", "host": "checkout-2"},
    "first_seen": 1_800_000_000.0,
    "count": 3,
    "summary": "…",
    "silenced_by": None,
    "details": {"value": 0.8, "expected": 0.2, "lower": 0.15, "upper": 0.25, "score": 0.93,
                "explanation": {"detectors": {"level": 0.93, "range": 0.9, "seasonal": 0.0}}},
}


@pytest.fixture
def slack():
    with SlackEmulator() as emulator:
        yield emulator


def _notifier(url: str) -> tuple[SlackNotifier, list[float]]:
    slept: list[float] = []
    return SlackNotifier(SlackConfig(webhook_url=url), sleep=slept.append, rng=random.Random(0)), slept


def test_the_message_explains_what_where_expected_seen_since_and_why(slack):
    notifier, _ = _notifier(slack.url)
    assert notifier.send(slack_message(ALERT, link="http://127.0.0.1:8080/api/v1/incidents/4")) == 1
    message = slack.messages[0]
    text = message["blocks"][0]["text"]["text"]
    assert "*CRITICAL* http_request_duration_seconds on host=checkout-2, service=checkout" in text
    assert "seen *0.8*, expected 0.2 (band 0.15..0.25)" in text
    assert "why: level 0.93, range 0.9, seasonal 0" in text
    assert "since 2027-01-15 08:00 UTC · 3 anomalies · score 0.93" in message["blocks"][1]["elements"][0]["text"]
    assert "incidents/4" in message["blocks"][2]["elements"][0]["text"]
    assert message["text"].startswith("CRITICAL http_request_duration_seconds")


def test_revoked_and_archived_webhooks_are_permanent(slack):
    notifier, slept = _notifier(slack.base + "/services/T000/B000/WRONG")
    with pytest.raises(PermanentDeliveryError, match="no_service"):
        notifier.send(slack_message(ALERT))
    slack.faults = [(410, "channel_is_archived", {})]
    notifier, slept = _notifier(slack.url)
    with pytest.raises(PermanentDeliveryError, match="channel_is_archived"):
        notifier.send(slack_message(ALERT))
    assert slept == []


def test_rate_limit_is_retried_after_the_given_delay(slack):
    slack.faults = [(429, "rate_limited", {"Retry-After": "1"})]
    notifier, slept = _notifier(slack.url)
    assert notifier.send(slack_message(ALERT)) == 2 and slept == [1.0] and len(slack.messages) == 1
