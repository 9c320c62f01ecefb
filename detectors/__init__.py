"""Anomaly detectors over numpy batches of many series at once; log template mining. Pure computation: no I/O.

The public names are imported on first use (PEP 562), so a light user such as `aiops logs parse`,
which needs only `detectors.logtemplates`, does not pay for numba and numpy at start-up.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

_WHERE = {
    "Detector": "detectors.base",
    "LevelShift": "detectors.changepoint",
    "DefaultEnsemble": "detectors.ensemble",
    "EwmaZScore": "detectors.ewma",
    "RobustMad": "detectors.robust",
    "SeasonalBaseline": "detectors.seasonal",
    "SEVERITIES": "detectors.threshold",
    "SeverityThreshold": "detectors.threshold",
    "LogRecord": "detectors.types",
    "MetricBatch": "detectors.types",
    "Scores": "detectors.types",
    "TemplateMiner": "detectors.logtemplates",
}

__all__ = sorted(_WHERE)

if TYPE_CHECKING:  # for type checkers and IDEs; at run time names resolve lazily below
    from detectors.base import Detector
    from detectors.changepoint import LevelShift
    from detectors.ensemble import DefaultEnsemble
    from detectors.ewma import EwmaZScore
    from detectors.logtemplates import TemplateMiner
    from detectors.robust import RobustMad
    from detectors.seasonal import SeasonalBaseline
    from detectors.threshold import SEVERITIES, SeverityThreshold
    from detectors.types import LogRecord, MetricBatch, Scores


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'detectors' has no attribute {name!r}")
    value = getattr(import_module(where), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
