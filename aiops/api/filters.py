"""Query parameters shared by the list endpoints, parsed once into a `ListQuery`."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Literal

from fastapi import HTTPException, Query

from aiops.store import CursorError, ListQuery, decode_cursor

__all__ = ["list_query", "parse_cursor"]


def parse_time(raw: str | None, field: str) -> float | None:
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise HTTPException(422, f"{field}: expected unix seconds or an ISO-8601 time, got {raw!r}") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).timestamp()


def _labels(raw: list[str]) -> dict[str, str]:
    labels = {}
    for item in raw:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise HTTPException(422, f"label: expected key=value, got {item!r}")
        labels[key] = value
    return labels


def parse_cursor(cursor: str | None) -> int | None:
    """The position a `next_cursor` stands for; 422 for one this API did not hand out."""
    try:
        return decode_cursor(cursor) if cursor else None
    except CursorError as exc:
        raise HTTPException(422, str(exc)) from None


def list_query(
    start: Annotated[str | None, Query(description="from this time (unix seconds or ISO-8601)")] = None,
    end: Annotated[str | None, Query(description="until this time (unix seconds or ISO-8601)")] = None,
    name: Annotated[str | None, Query(description="metric name")] = None,
    label: Annotated[list[str], Query(description="label matcher key=value; repeat to require several")] = [],  # noqa: B006
    severity: Annotated[Literal["warning", "critical"] | None, Query()] = None,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> ListQuery:
    after = parse_cursor(cursor)
    return ListQuery(
        start=parse_time(start, "start"),
        end=parse_time(end, "end"),
        name=name,
        labels=_labels(label),
        severity=severity,
        cursor=after,
        limit=limit,
    )
