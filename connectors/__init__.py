"""Clients for external systems: sources, actions and notifiers. No pipeline logic here."""

from connectors.errors import (
    ActionCancelled,
    ActionError,
    ActionTimeout,
    ConfigurationError,
    ConnectorError,
    DeliveryError,
    PermanentDeliveryError,
    RetriesExhausted,
)
from connectors.jenkins import BuildRef, BuildResult, JenkinsAction, JenkinsConfig, QueuedBuild
from connectors.pagerduty import PagerDutyConfig, PagerDutyNotifier
from connectors.slack import SlackConfig, SlackNotifier, slack_message
from connectors.webhook import Delivery, WebhookConfig, WebhookNotifier

__all__ = [
    "ActionCancelled",
    "ActionError",
    "ActionTimeout",
    "BuildRef",
    "BuildResult",
    "ConfigurationError",
    "ConnectorError",
    "Delivery",
    "DeliveryError",
    "JenkinsAction",
    "JenkinsConfig",
    "PagerDutyConfig",
    "PagerDutyNotifier",
    "PermanentDeliveryError",
    "QueuedBuild",
    "RetriesExhausted",
    "SlackConfig",
    "SlackNotifier",
    "slack_message",
    "WebhookConfig",
    "WebhookNotifier",
]
