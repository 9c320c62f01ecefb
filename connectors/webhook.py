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

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment
from pydantic import Field, SecretStr

from connectors._http import Outbound, RetrySettings
from connectors.errors import ConfigurationError

__all__ = ["Delivery", "WebhookConfig", "WebhookNotifier"]

class WebhookConfig(RetrySettings):
    url: str = Field(pattern=r"^https?://")
    secret: SecretStr | None = None
    template: str | None = Field(None, description="Jinja2 (sandboxed) producing the JSON body; default: the payload")
    headers: dict[str, str] = Field(default_factory=dict)


@dataclass(frozen=True)
class Delivery:
    status: int
    attempts: int


class WebhookNotifier(Outbound):
    """Sends notifications to one webhook."""

    what = "webhook"

    def __init__(self, config: WebhookConfig, **seams: Any) -> None:
        super().__init__(config, **seams)
        self.config: WebhookConfig = config
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

        def headers() -> dict[str, str]:  # fresh per attempt: the signature carries a timestamp
            return {**self.config.headers, **self._signed(body), "Content-Type": "application/json",
                    "Idempotency-Key": idempotency_key}

        response, attempts = self._post(self.config.url, body, headers)
        return Delivery(response.status_code, attempts)

    def _signed(self, body: bytes) -> dict[str, str]:
        if self.config.secret is None:
            return {}
        ts = str(int(self.clock()))
        digest = hmac.new(self.config.secret.get_secret_value().encode(), ts.encode() + b"." + body, hashlib.sha256)
        return {"X-Aiops-Timestamp": ts, "X-Aiops-Signature": f"sha256={digest.hexdigest()}"}

