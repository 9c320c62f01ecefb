"""Typed dependencies: routers get the service (and through it settings and store) from here."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from aiops.service import Service

__all__ = ["ServiceDep", "get_service"]


def get_service(request: Request) -> Service:
    return request.app.state.service


ServiceDep = Annotated[Service, Depends(get_service)]
