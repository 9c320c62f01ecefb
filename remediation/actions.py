"""Runbook actions that reach out: an HTTP call. (Waits and checks are the executor's own, since they
need its clock and the live detector state; the Jenkins action is in `connectors.jenkins`.)

An action gets its rendered arguments, the step's timeout and retry policy, and the step's
idempotency key, which every attempt and every resumption of the step shares: the HTTP action sends
it as `Idempotency-Key`, so an endpoint that honours it runs the request once however often the
executor had to retry it.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from connectors import ConnectorError
from connectors._http import RetryPolicy, request_with_retries

__all__ = ["ActionError", "HttpCall", "StepRun"]


class ActionError(Exception):
    """The action failed; the message says how (after its retries)."""


@dataclass(frozen=True)
class StepRun:
    """What an action needs besides its arguments."""

    idempotency_key: str
    timeout_s: float
    max_attempts: int
    backoff_s: float


class HttpCall:
    """`http` steps: a request whose answer must have an expected status (default any 2xx)."""

    def __init__(
        self,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.client = client or httpx.Client()
        self.sleep, self.clock, self.rng = sleep, clock, rng or random.Random()

    def run(self, args: dict[str, Any], run: StepRun) -> dict[str, Any]:
        method = str(args.get("method", "POST")).upper()
        if "json" in args:
            body: bytes | None = json.dumps(args["json"]).encode()
            content_type = {"Content-Type": "application/json"}
        elif "body" in args:
            body, content_type = str(args["body"]).encode(), {}
        else:
            body, content_type = None, {}
        headers = {**{str(k): str(v) for k, v in (args.get("headers") or {}).items()}, **content_type,
                   "Idempotency-Key": run.idempotency_key}
        policy = RetryPolicy(run.timeout_s, run.max_attempts, run.backoff_s, max(run.backoff_s * 8, 1.0))
        expected = args.get("expect_status")
        wanted = None if expected is None else {int(x) for x in ([expected] if isinstance(expected, (int, str)) else expected)}
        try:
            response, attempts = request_with_retries(
                self.client, method, str(args["url"]), body, lambda: headers, policy, self.sleep, self.clock, self.rng,
                f"{method} {args['url']}", handled=wanted or (),
            )
        except ConnectorError as exc:  # the connector's errors are already precise
            raise ActionError(str(exc)) from None
        if wanted is not None and response.status_code not in wanted:
            raise ActionError(f"{method} {args['url']} answered {response.status_code}, expected {sorted(wanted)}")
        return {"status": response.status_code, "attempts": attempts, "body": response.text[:2000]}
