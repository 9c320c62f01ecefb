"""Anomaly detectors over numpy batches of many series at once. Pure computation: no I/O."""

from detectors.base import Detector
from detectors.changepoint import LevelShift
from detectors.ensemble import DefaultEnsemble
from detectors.ewma import EwmaZScore
from detectors.robust import RobustMad
from detectors.seasonal import SeasonalBaseline
from detectors.threshold import SEVERITIES, SeverityThreshold
from detectors.types import MetricBatch, Scores

__all__ = [
    "SEVERITIES",
    "DefaultEnsemble",
    "Detector",
    "EwmaZScore",
    "LevelShift",
    "MetricBatch",
    "RobustMad",
    "Scores",
    "SeasonalBaseline",
    "SeverityThreshold",
]
