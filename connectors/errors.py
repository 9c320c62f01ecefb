"""Errors of the connectors, one tree, so callers catch what they mean:

    ConnectorError
    ├── ConfigurationError      bad settings for a connector (a template that does not render, …)
    ├── DeliveryError           the remote system did not take the request
    │   ├── PermanentDeliveryError   it refused (4xx): retrying will not help
    │   └── RetriesExhausted         it kept failing (timeouts, 429, 5xx) until attempts ran out
    └── ActionError             an action was taken (a build queued) but gave no result
        ├── ActionCancelled          the remote system cancelled it before it ran
        └── ActionTimeout            no result in the time allowed; it may still run: follow `url` later

An ActionError is not a DeliveryError on purpose: the request was taken, so triggering again could run
the action twice. It carries the `url` to follow instead.

Foreign errors (httpx, jinja2) are mapped at the boundary with `raise … from exc`.
"""

from __future__ import annotations

__all__ = [
    "ActionCancelled",
    "ActionError",
    "ActionTimeout",
    "ConfigurationError",
    "ConnectorError",
    "DeliveryError",
    "PermanentDeliveryError",
    "RetriesExhausted",
]


class ConnectorError(Exception):
    """Base of every connector error."""


class ConfigurationError(ConnectorError):
    """A connector's settings cannot work (the message says which and why)."""


class DeliveryError(ConnectorError):
    """The remote system did not take the request."""

    def __init__(self, message: str, attempts: int, status: int | None = None) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.status = status


class PermanentDeliveryError(DeliveryError):
    """The remote system refused the request (4xx other than 408/429): not retried."""


class RetriesExhausted(DeliveryError):
    """Every attempt failed with a retryable error (timeout, connection error, 408, 429, 5xx)."""


class ActionError(ConnectorError):
    """An action was accepted but did not run to a result; `url` is where to follow it (queue item or build)."""

    def __init__(self, message: str, url: str) -> None:
        super().__init__(message)
        self.url = url


class ActionCancelled(ActionError):
    """The remote system cancelled the action before it ran (a Jenkins queue item cancelled)."""


class ActionTimeout(ActionError):
    """The action did not start or finish in the time allowed; it may still run."""
