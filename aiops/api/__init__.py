"""The REST API: one router per resource, typed dependencies, public schemas."""

from aiops.api.app import create_app

__all__ = ["create_app"]
