"""The built-in demo environment: a simulated fleet fed through the service's own ingest."""

from aiops.demo.simulator import INCIDENT_KINDS, METRICS, FleetSimulator, Incident

__all__ = ["INCIDENT_KINDS", "METRICS", "FleetSimulator", "Incident"]
