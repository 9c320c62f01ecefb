"""The PagerDuty notifier against the Events API v2 emulator: trigger/ack/resolve, errors, retries."""

from __future__ import annotations

import random

import pytest
from emulators.pagerduty import PagerDutyEmulator

from connectors import PermanentDeliveryError, RetriesExhausted
from connectors.pagerduty import PagerDutyConfig, PagerDutyNotifier

KEY = "R" * 32


@pytest.fixture
def pd():
    with PagerDutyEmulator() as emulator:
        yield emulator


def _notifier(url: str, **config) -> tuple[PagerDutyNotifier, list[float]]:
    slept: list[float] = []
    return PagerDutyNotifier(PagerDutyConfig(routing_key=KEY, url=url, **config), sleep=slept.append,
                             clock=lambda: 1_800_000_000.0, rng=random.Random(0)), slept


def test_trigger_acknowledge_resolve_share_one_dedup_key(pd):
    notifier, _ = _notifier(pd.url)
    key = notifier.trigger("aiops:incident:42", "p99 latency 3.2x baseline on checkout", "checkout-prod", "critical",
                           component="checkout", custom_details={"score": 0.93},
                           links=[{"href": "http://127.0.0.1:8080/api/v1/incidents/42", "text": "incident"}])
    assert key == "aiops:incident:42" and pd.alerts[key] == "triggered"
    event = pd.events[0]
    assert event["payload"]["timestamp"] == "2027-01-15T08:00:00Z" and event["payload"]["custom_details"] == {"score": 0.93}
    notifier.acknowledge(key)
    assert pd.alerts[key] == "acknowledged"
    notifier.resolve(key)
    assert pd.alerts[key] == "resolved" and [e["event_action"] for e in pd.events] == ["trigger", "acknowledge", "resolve"]


def test_an_invalid_event_is_a_permanent_error(pd):
    notifier, slept = _notifier(pd.url)
    with pytest.raises(PermanentDeliveryError) as err:
        notifier.trigger("k", "summary", "", "critical")  # no source
    assert err.value.status == 400 and "payload.source" in str(err.value) and slept == []


def test_rate_limits_and_server_errors_are_retried(pd):
    pd.faults = [(429, {"Retry-After": "2"}), (502, {})]
    notifier, slept = _notifier(pd.url)
    assert notifier.trigger("k", "s", "src", "warning") == "k"
    assert slept[0] == 2.0 and len(slept) == 2 and pd.alerts["k"] == "triggered"


def test_retries_run_out(pd):
    pd.faults = [(503, {})] * 3
    notifier, _ = _notifier(pd.url, max_attempts=3)
    with pytest.raises(RetriesExhausted, match="PagerDuty failed 3 times"):
        notifier.resolve("k")


def test_routing_key_must_be_32_characters():
    with pytest.raises(ValueError):
        PagerDutyConfig(routing_key="short")
