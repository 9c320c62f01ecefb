"""Clients for external systems: sources, actions and notifiers (arrive with the issues that need them)."""
