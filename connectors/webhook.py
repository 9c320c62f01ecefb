"""Generic webhook notifier: a JSON POST any receiver can take, signed, retried, idempotent.

- Body: the payload as JSON, or rendered from a Jinja2 template in the sandbox (templates can shape
  the JSON a receiver expects but cannot run code or read files); the rendered text must be JSON.
- Signature: with a secret, `X-Aiops-Signature: sha256=<hex>` is the HMAC-SHA256 of
  `"<X-Aiops-Timestamp>.<body>"`, so a receiver can check origin and reject replays.
- `Idempotency-Key`: the same for every attempt of one notification, so a receiver that saw a
  retried request can drop the duplicate.
- Retries: timeouts, connection errors, 408, 429 and 5xx are retried with exponential backoff and
  full jitter (Retry-After is honoured when given, in seconds or as an HTTP date); any other 4xx is
  permanent. Every attempt has an explicit timeout.
"""

from __future__ import annotations

import email.utils
import hashlib
import hmac
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from connectors.errors import ConfigurationError, PermanentDeliveryError, RetriesExhausted

__all__ = ["Delivery", "WebhookConfig", "WebhookNotifier"]

_RETRYABLE = {408, 429}


class WebhookConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(pattern=r"^https?://")
    secret: SecretStr | None = None
    template: str | None = Field(None, description="Jinja2 (sandboxed) producing the JSON body; default: the payload")
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(5.0, gt=0, le=60)
    max_attempts: int = Field(4, ge=1, le=10)
    backoff_base_s: float = Field(0.5, ge=0)
    backoff_max_s: float = Field(30.0, ge=0)


@dataclass(frozen=True)
class Delivery:
    status: int
    attempts: int


class WebhookNotifier:
    """Sends notifications to one webhook. Seams: the httpx client, the clock, sleep and randomness."""

    def __init__(
        self,
        config: WebhookConfig,
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
        self._template = None
        if config.template is not None:
            env = SandboxedEnvironment(autoescape=False, undefined=StrictUndefined)
            env.filters["tojson"] = lambda value: json.dumps(value)
            try:
                self._template = env.from_string(config.template)
            except TemplateError as exc:
                raise ConfigurationError(f"webhook template does not parse: {exc}") from exc

    def render(self, payload: dict[str, Any]) -> bytes:
        if self._template is None:
            return json.dumps(payload, separators=(",", ":"), default=str).encode()
        try:
            text = self._template.render(**payload)
        except TemplateError as exc:  # includes the sandbox's SecurityError
            raise ConfigurationError(f"webhook template failed to render: {exc}") from exc
        try:
            json.loads(text)
        except ValueError as exc:
            raise ConfigurationError(f"webhook template did not produce JSON: {exc}") from exc
        return text.encode()

    def send(self, payload: dict[str, Any], idempotency_key: str) -> Delivery:
        body = self.render(payload)
        last = "no attempt"
        status = None
        for attempt in range(1, self.config.max_attempts + 1):
            headers = {**self.config.headers, **self._signed(body), "Content-Type": "application/json",
                       "Idempotency-Key": idempotency_key}
            retry_after = None
            try:
                response = self.client.post(self.config.url, content=body, headers=headers, timeout=self.config.timeout_s)
            except httpx.HTTPError as exc:  # timeouts, refused connections: retryable
                last, status = f"{type(exc).__name__}: {exc}", None
            else:
                status = response.status_code
                if status < 300:
                    return Delivery(status, attempt)
                if status < 500 and status not in _RETRYABLE:
                    raise PermanentDeliveryError(
                        f"webhook refused the notification: HTTP {status} {response.text[:200]}", attempt, status
                    )
                last = f"HTTP {status}"
                retry_after = _retry_after(response.headers.get("retry-after"), self.clock())
            if attempt < self.config.max_attempts:
                self.sleep(retry_after if retry_after is not None else self._backoff(attempt))
        raise RetriesExhausted(f"webhook failed {self.config.max_attempts} times, last: {last}", self.config.max_attempts, status)

    def _backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(max, base · 2^(attempt−1))]."""
        ceiling = min(self.config.backoff_max_s, self.config.backoff_base_s * 2 ** (attempt - 1))
        return self.rng.uniform(0, ceiling)

    def _signed(self, body: bytes) -> dict[str, str]:
        if self.config.secret is None:
            return {}
        ts = str(int(self.clock()))
        digest = hmac.new(self.config.secret.get_secret_value().encode(), ts.encode() + b"." + body, hashlib.sha256)
        return {"X-Aiops-Timestamp": ts, "X-Aiops-Signature": f"sha256={digest.hexdigest()}"}


def _retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), capped at 5 minutes."""
    if not value:
        return None
    try:
        return min(max(float(value), 0.0), 300.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return min(max(when - now, 0.0), 300.0)
