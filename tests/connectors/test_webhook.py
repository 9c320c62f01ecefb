"""The webhook notifier against a real HTTP receiver on loopback: body, signature, retries, errors."""

from __future__ import annotations

import hashlib
import hmac
import json
import random

import pytest
from emulators.http_receiver import HttpReceiver, Reply

import connectors
from connectors import ConfigurationError, PermanentDeliveryError, RetriesExhausted, WebhookConfig, WebhookNotifier
from connectors import errors as connector_errors

PAYLOAD = {"alert": {"summary": "cpu high", "severity": "critical", "labels": {"host": "a"}}, "incident_id": 7}


@pytest.fixture
def receiver():
    with HttpReceiver() as r:
        yield r


def _notifier(url: str, **config) -> tuple[WebhookNotifier, list[float]]:
    slept: list[float] = []
    notifier = WebhookNotifier(WebhookConfig(url=url + "/hook", **config), sleep=slept.append, clock=lambda: 1_800_000_000.0,
                               rng=random.Random(0))
    return notifier, slept


def test_payload_signed_with_hmac_and_idempotency_key(receiver):
    notifier, _ = _notifier(receiver.url, secret="s3cret", headers={"X-Team": "sre"})
    delivery = notifier.send(PAYLOAD, idempotency_key="incident-7-opened")
    assert (delivery.status, delivery.attempts) == (200, 1)
    request = receiver.requests[0]
    assert request.path == "/hook" and json.loads(request.body) == PAYLOAD
    assert request.headers["idempotency-key"] == "incident-7-opened" and request.headers["x-team"] == "sre"
    expected = hmac.new(b"s3cret", b"1800000000." + request.body, hashlib.sha256).hexdigest()
    assert request.headers["x-aiops-signature"] == f"sha256={expected}"
    assert request.headers["x-aiops-timestamp"] == "1800000000"


def test_template_shapes_the_body_in_the_sandbox(receiver):
    template = '{"text": {{ ("[" ~ alert.severity|upper ~ "] " ~ alert.summary)|tojson }}, "id": {{ incident_id }}}'
    notifier, _ = _notifier(receiver.url, template=template)
    notifier.send(PAYLOAD, idempotency_key="k")
    assert json.loads(receiver.requests[0].body) == {"text": "[CRITICAL] cpu high", "id": 7}


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ alert.__class__.__mro__ }}", "render"),  # the sandbox refuses introspection
        ("{{ missing }}", "render"),  # undefined names are errors, not empty strings
        ("not json {{ incident_id }}", "did not produce JSON"),
        ("{% for %}", "does not parse"),
    ],
)
def test_bad_templates_are_configuration_errors(receiver, template, message):
    with pytest.raises(ConfigurationError, match=message):
        notifier, _ = _notifier(receiver.url, template=template)
        notifier.send(PAYLOAD, idempotency_key="k")
    assert receiver.requests == []


def test_5xx_and_429_are_retried_with_the_same_key_and_retry_after_honoured(receiver):
    receiver.replies = [Reply(503), Reply(429, {"Retry-After": "7"}), Reply(500)]
    notifier, slept = _notifier(receiver.url, max_attempts=4, backoff_base_s=1.0)
    delivery = notifier.send(PAYLOAD, idempotency_key="k1")
    assert (delivery.status, delivery.attempts) == (200, 4)
    assert {r.headers["idempotency-key"] for r in receiver.requests} == {"k1"}
    assert slept[1] == 7.0  # Retry-After
    assert 0 <= slept[0] <= 1.0 and 0 <= slept[2] <= 4.0  # full jitter under the exponential ceiling


def test_4xx_is_permanent_and_not_retried(receiver):
    receiver.replies = [Reply(400, body=b'{"error": "bad field"}')]
    notifier, slept = _notifier(receiver.url)
    with pytest.raises(PermanentDeliveryError) as err:
        notifier.send(PAYLOAD, idempotency_key="k")
    assert err.value.status == 400 and err.value.attempts == 1 and "bad field" in str(err.value)
    assert len(receiver.requests) == 1 and slept == []


def test_timeouts_are_retried_then_exhausted(receiver):
    receiver.replies = [Reply(200, delay_s=0.5), Reply(200, delay_s=0.5)]
    notifier, slept = _notifier(receiver.url, timeout_s=0.1, max_attempts=2)
    with pytest.raises(RetriesExhausted) as err:
        notifier.send(PAYLOAD, idempotency_key="k")
    assert err.value.attempts == 2 and "Timeout" in str(err.value) and len(slept) == 1


def test_connection_refused_is_retried_then_exhausted():
    notifier, slept = _notifier("http://127.0.0.1:9", max_attempts=3)
    with pytest.raises(RetriesExhausted, match="failed 3 times"):
        notifier.send(PAYLOAD, idempotency_key="k")
    assert len(slept) == 2


def test_every_connector_exception_is_exported():
    defined = {n for n, v in vars(connector_errors).items() if isinstance(v, type) and issubclass(v, Exception)}
    assert defined <= set(connectors.__all__)
