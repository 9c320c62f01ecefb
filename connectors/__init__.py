"""Clients for external systems: sources, actions and notifiers. No pipeline logic here."""

from connectors.errors import ConfigurationError, ConnectorError, DeliveryError, PermanentDeliveryError, RetriesExhausted
from connectors.pagerduty import PagerDutyConfig, PagerDutyNotifier
from connectors.slack import SlackConfig, SlackNotifier, slack_message
from connectors.webhook import Delivery, WebhookConfig, WebhookNotifier

__all__ = [
    "ConfigurationError",
    "ConnectorError",
    "Delivery",
    "DeliveryError",
    "PagerDutyConfig",
    "PagerDutyNotifier",
    "PermanentDeliveryError",
    "RetriesExhausted",
    "SlackConfig",
    "SlackNotifier",
    "slack_message",
    "WebhookConfig",
    "WebhookNotifier",
]
