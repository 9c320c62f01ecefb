"""GET /api/v1/topology: the service dependency map, traced edges merged with the configured map.

Traced edges come from spans posted to /v1/traces (in `server.mode: api-only`, from the map the
workers save: re-read when older than `MAP_MAX_AGE_S`); configured ones from
`alerting.incidents.topology`, for the services traces do not show calling anything (see
`aiops.topology`). Incident grouping and root-cause ranking use this same map.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from aiops.api.deps import ServiceDep

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["topology"])

MAP_MAX_AGE_S = 5.0


class TopologyNode(BaseModel):
    service: str
    traced: bool = Field(description="seen in traces (as a caller or a callee)")


class TopologyEdge(BaseModel):
    caller: str
    callee: str
    source: Literal["traced", "config"]
    call_rate: float | None = Field(None, description="calls per second in the latest closed interval (traced edges)")
    error_ratio: float | None = Field(None, description="failed calls / calls in the latest closed interval")
    p95_ms: float | None = Field(None, description="p95 latency of the calls in the latest closed interval, ms")
    calls: int = Field(0, description="traced calls counted since the edge was first seen")
    errors: int = 0
    first_seen: float | None = Field(None, description="unix seconds (traced edges)")
    last_seen: float | None = None


class Topology(BaseModel):
    nodes: list[TopologyNode]
    edges: list[TopologyEdge]


@router.get("/topology", response_model=Topology, summary="The service dependency map (traced and configured)")
def get_topology(service: ServiceDep) -> Topology:
    if service.api_only:
        service.refresh_service_map(max_age_s=MAP_MAX_AGE_S)
    edges = service.service_map.edges()
    traced = {s for e in edges if e.source == "traced" for s in (e.caller, e.callee)}
    names = sorted({s for e in edges for s in (e.caller, e.callee)})
    return Topology(
        nodes=[TopologyNode(service=s, traced=s in traced) for s in names],
        edges=[TopologyEdge(**vars(e)) for e in edges],
    )
