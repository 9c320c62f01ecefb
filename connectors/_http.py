"""One retry policy for outbound HTTP: explicit timeouts, jittered backoff, Retry-After, 4xx final."""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass

import httpx
from pydantic import BaseModel, ConfigDict, Field

from connectors.errors import PermanentDeliveryError, RetriesExhausted

__all__ = ["Outbound", "RetryPolicy", "RetrySettings", "request_with_retries"]

_RETRYABLE = {408, 429}


@dataclass(frozen=True)
class RetryPolicy:
    timeout_s: float = 5.0
    max_attempts: int = 4
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0


class RetrySettings(BaseModel):
    """The retry fields every outbound connector's config shares."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout_s: float = Field(5.0, gt=0, le=60)
    max_attempts: int = Field(4, ge=1, le=10)
    backoff_base_s: float = Field(0.5, ge=0)
    backoff_max_s: float = Field(30.0, ge=0)

    def policy(self) -> RetryPolicy:
        return RetryPolicy(self.timeout_s, self.max_attempts, self.backoff_base_s, self.backoff_max_s)


class Outbound:
    """Seams every outbound connector takes: the httpx client, sleep, the clock and randomness."""

    what = "remote system"

    def __init__(
        self,
        config: RetrySettings,
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

    def _post(self, url: str, body: bytes, headers: Callable[[], dict[str, str]]) -> tuple[httpx.Response, int]:
        return self._request("POST", url, headers, body)

    def _request(
        self,
        method: str,
        url: str,
        headers: Callable[[], dict[str, str]],
        body: bytes | None = None,
        handled: Collection[int] = (),
    ) -> tuple[httpx.Response, int]:
        return request_with_retries(
            self.client, method, url, body, headers, self.config.policy(), self.sleep, self.clock, self.rng, self.what,
            handled,
        )


def request_with_retries(
    client: httpx.Client,
    method: str,
    url: str,
    body: bytes | None,
    headers: Callable[[], dict[str, str]],
    policy: RetryPolicy,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
    rng: random.Random,
    what: str,
    handled: Collection[int] = (),
) -> tuple[httpx.Response, int]:
    """Send until a 2xx or a status in `handled` (returned with the attempt count, for the caller to
    interpret); timeouts, connection errors, 408, 429 and 5xx are retried, any other 4xx raises
    PermanentDeliveryError; `headers` is called per attempt."""
    last, status = "no attempt", None
    for attempt in range(1, policy.max_attempts + 1):
        retry_after = None
        try:
            response = client.request(method, url, content=body, headers=headers(), timeout=policy.timeout_s)
        except httpx.HTTPError as exc:
            last, status = f"{type(exc).__name__}: {exc}", None
        else:
            status = response.status_code
            if status < 300 or status in handled:
                return response, attempt
            if status < 500 and status not in _RETRYABLE:
                raise PermanentDeliveryError(f"{what} refused: HTTP {status} {response.text[:200]}", attempt, status)
            last = f"HTTP {status}"
            retry_after = _retry_after(response.headers.get("retry-after"), clock())
        if attempt < policy.max_attempts:
            ceiling = min(policy.backoff_max_s, policy.backoff_base_s * 2 ** (attempt - 1))
            sleep(retry_after if retry_after is not None else rng.uniform(0, ceiling))  # full jitter
    raise RetriesExhausted(f"{what} failed {policy.max_attempts} times, last: {last}", policy.max_attempts, status)


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
