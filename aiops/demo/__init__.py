"""The built-in demo environment: a simulated fleet fed through the service's own ingest.

Only the pure simulator is re-exported; the feeder (`aiops.demo.feeder`) pulls in httpx and the
settings, so the CLI imports it where it starts the demo.
"""

from aiops.demo.simulator import INCIDENT_KINDS, METRICS, SERVICE_NAMES, FleetSimulator, Incident

__all__ = ["INCIDENT_KINDS", "METRICS", "SERVICE_NAMES", "FleetSimulator", "Incident"]
