"""Reading recorded data for `aiops score` and `aiops backtest`, and replaying it through detectors."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # reading a file needs no detector (and `aiops forecast` starts faster without numba)
    from detectors import Detector, Scores

__all__ = ["DataFileError", "Series", "read_csv_series", "score_series"]


class DataFileError(ValueError):
    """A data file that cannot be read; the message names the file, the line and the problem."""


@dataclass(frozen=True)
class Series:
    ts: np.ndarray  # unix seconds
    value: np.ndarray
    label: np.ndarray | None = None  # 1 where a point is labelled anomalous, when the file says


def _parse_time(text: str) -> float:
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        return float(np.datetime64(text.rstrip("Z").replace(" ", "T"), "s").astype(np.int64))


def read_csv_series(path: str | Path) -> Series:
    """A CSV with header `timestamp,value` (optionally `label`): ISO or `YYYY-MM-DD HH:MM:SS` times or unix seconds."""
    ts, values, labels = [], [], []
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = [h.strip().lower() for h in next(reader, [])]
        if header[:2] != ["timestamp", "value"]:
            raise DataFileError(f"{path}:1: expected the header timestamp,value[,label], got {','.join(header)!r}")
        has_label = len(header) > 2 and header[2] in ("label", "is_anomaly", "anomaly")
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            try:
                ts.append(_parse_time(row[0]))
                values.append(float(row[1]) if row[1].strip() else np.nan)
                if has_label:
                    labels.append(int(float(row[2])))
            except (ValueError, IndexError) as exc:
                raise DataFileError(f"{path}:{line}: cannot read {','.join(row)!r}: {exc}") from None
    return Series(np.array(ts), np.array(values, dtype=float), np.array(labels) if has_label else None)


def score_series(detector: Detector, series: Series, chunk: int = 4096) -> Scores:
    """Stream one series through `detector` in chunks (as the service would) and join the scores."""
    from detectors import MetricBatch, Scores

    parts = []
    for start in range(0, len(series.ts), chunk):
        end = start + chunk
        n = len(series.ts[start:end])
        parts.append(detector.update(MetricBatch.from_arrays(np.zeros(n), series.ts[start:end], series.value[start:end])))
    if not parts:
        return detector.update(MetricBatch.empty())
    return Scores(
        *(np.concatenate([getattr(p, f) for p in parts]) for f in ("score", "expected", "lower", "upper", "ready"))
    )
