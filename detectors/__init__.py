"""Anomaly detectors over numpy batches of many series at once. Pure computation: no I/O."""

from detectors.base import Detector
from detectors.ewma import EwmaZScore
from detectors.threshold import SEVERITIES, SeverityThreshold
from detectors.types import MetricBatch, Scores

__all__ = ["SEVERITIES", "Detector", "EwmaZScore", "MetricBatch", "Scores", "SeverityThreshold"]
