"""aiops: the service that wires ingest, detectors, forecasting, remediation and connectors."""

__version__ = "0.1.0"
