"""Public response shapes of the REST API (documented in the OpenAPI schema)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

__all__ = ["AlertPublic", "AlertPage", "AnomalyPublic", "AnomalyPage", "IngestResult", "RejectedItem", "Problem"]


class RejectedItem(BaseModel):
    index: int
    field: str
    reason: str


class IngestResult(BaseModel):
    accepted: int
    rejected: int
    errors: list[RejectedItem]


class Problem(BaseModel):
    """Body of every 4xx/5xx the API itself raises."""

    detail: str
    field: str | None = None


class AnomalyPublic(BaseModel):
    id: int
    series_id: int
    name: str
    labels: dict[str, str]
    ts: float
    value: float
    expected: float | None
    lower: float | None
    upper: float | None
    score: float
    severity: str
    detector: str
    explanation: dict[str, Any]
    alert_id: int | None


class AnomalyPage(BaseModel):
    items: list[AnomalyPublic]
    next_cursor: str | None


class AlertPublic(BaseModel):
    id: int
    fingerprint: str
    kind: str
    state: str
    severity: str
    summary: str
    labels: dict[str, str]
    series_id: int | None
    first_seen: float
    last_seen: float
    updated_at: float
    resolved_at: float | None
    count: int
    details: dict[str, Any]
    silenced_by: str | None = None
    flapping: bool = False


class AlertPage(BaseModel):
    items: list[AlertPublic]
    next_cursor: str | None
