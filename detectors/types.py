"""Columnar value types shared by the pipeline, the detectors and the forecasters.

They live here, in the pure-computation side, so that `detectors` and `forecasting` depend on nothing
of ours but this module, while the service (`aiops`) and `ingest` build and consume them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["LogRecord", "MetricBatch", "Scores"]


@dataclass(frozen=True, slots=True)
class MetricBatch:
    """Points of many series in three parallel arrays, in arrival order.

    Points of one series keep their relative order; a series may appear several times in a batch.
    """

    series_id: np.ndarray  # int32, dense ids from the series registry
    ts: np.ndarray  # float64, unix seconds
    value: np.ndarray  # float64, finite

    def __post_init__(self) -> None:
        n = len(self.series_id)
        if len(self.ts) != n or len(self.value) != n:
            raise ValueError(
                f"MetricBatch arrays differ in length: series_id={n}, ts={len(self.ts)}, value={len(self.value)}"
            )

    @classmethod
    def from_arrays(cls, series_id, ts, value) -> MetricBatch:
        """Build a batch, converting each array to its canonical dtype (no copy when it already is)."""
        return cls(
            np.ascontiguousarray(series_id, dtype=np.int32),
            np.ascontiguousarray(ts, dtype=np.float64),
            np.ascontiguousarray(value, dtype=np.float64),
        )

    @classmethod
    def empty(cls) -> MetricBatch:
        return cls.from_arrays([], [], [])

    @classmethod
    def concat(cls, batches: list[MetricBatch]) -> MetricBatch:
        """Join batches in order; arrival order (and so per-series order) is kept."""
        if not batches:
            return cls.empty()
        if len(batches) == 1:
            return batches[0]
        return cls(
            np.concatenate([b.series_id for b in batches]),
            np.concatenate([b.ts for b in batches]),
            np.concatenate([b.value for b in batches]),
        )

    def __len__(self) -> int:
        return len(self.series_id)

    def take(self, index: np.ndarray) -> MetricBatch:
        """The points at `index` (an integer index array or boolean mask), in that order."""
        return MetricBatch(self.series_id[index], self.ts[index], self.value[index])


@dataclass(frozen=True, slots=True)
class Scores:
    """What a detector says about each point of a batch, aligned with the batch.

    `score` is in [0, 1]; `expected`, `lower` and `upper` describe the band the detector expected the
    value in (NaN while the detector has no estimate yet); `ready` is False during a series' warm-up,
    when no decision may be taken from the score. An ensemble also says how much each of its members
    contributed (`components`, name → array aligned with the batch), which explanations show.
    """

    score: np.ndarray
    expected: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    ready: np.ndarray  # bool
    components: dict[str, np.ndarray] | None = None  # an ensemble's per-detector contributions

    @classmethod
    def empty(cls, n: int) -> Scores:
        """Scores of `n` points nothing could be said about yet: 0, no band, not ready."""
        return cls(np.zeros(n), np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan), np.zeros(n, dtype=bool))


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One log line as ingest hands it to the log monitor: canonical whatever the wire format was."""

    ts: float  # unix seconds
    body: str
    labels: dict[str, str]  # where it came from (service, host, …)
    severity: int = 0  # OpenTelemetry SeverityNumber (0: unspecified; 17-20 ERROR, 21-24 FATAL)
