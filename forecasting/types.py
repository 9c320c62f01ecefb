"""What a forecaster returns: one series' `Forecast`, or a `ForecastBatch` of many aligned series.

A forecast always says which model made it and how well that model did on the series' own recent
history (`backtest_error`), so a predictive alert can show why it trusts the forecast, and a
caller can discard forecasts whose backtest error is too large. A series that cannot be forecast
(too short) is a result with `status="too_short"` and a `reason`, not an exception.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

__all__ = ["Crossing", "Forecast", "ForecastBatch", "Status"]

Status = Literal["ok", "too_short"]


@dataclass(frozen=True)
class Forecast:
    """One series' forecast: `horizon` future timestamps and, at each, yhat inside [lower, upper].

    `level` is the central probability of the interval (0.8: an 80% interval). `backtest_error` is
    the mean absolute error (in the series' units) of the same method over rolling-origin windows of
    the series' recent history; NaN when there was no room for a backtest. `model` names the method
    (a combination lists its members, best first). For counters the values are per-second rates.
    """

    ts: np.ndarray
    yhat: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    model: str
    backtest_error: float
    level: float = 0.8
    status: Status = "ok"
    reason: str = ""
    history_start: float = float("nan")  # first timestamp used (later than the data's after a reset)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @classmethod
    def too_short(cls, ts: np.ndarray, needed: int, got: int, level: float, note: str = "") -> Forecast:
        nan = np.full(len(ts), np.nan)
        reason = f"too short: need {needed} points, got {got}{note}"
        return cls(ts, nan, nan.copy(), nan.copy(), "none", float("nan"), level, "too_short", reason)


@dataclass(frozen=True)
class ForecastBatch:
    """Forecasts of many series over one shared time grid: rows are series, columns horizon steps.

    Rows whose history was too short hold NaN with `status[i] == "too_short"` and a `reason[i]`.
    """

    ts: np.ndarray  # (horizon,)
    yhat: np.ndarray  # (series, horizon)
    lower: np.ndarray
    upper: np.ndarray
    model: list[str]
    backtest_error: np.ndarray  # (series,)
    level: float = 0.8
    status: list[Status] = field(default_factory=list)
    reason: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return self.yhat.shape[0]

    def row(self, i: int) -> Forecast:
        """Series `i` as a `Forecast`."""
        return Forecast(
            self.ts, self.yhat[i], self.lower[i], self.upper[i], self.model[i], float(self.backtest_error[i]),
            self.level, self.status[i] if self.status else "ok", self.reason[i] if self.reason else "",
        )  # fmt: skip


@dataclass(frozen=True)
class Crossing:
    """When a forecast reaches a threshold: earliest (from the far interval bound), likely (from
    yhat) and latest (from the near bound). A time is None when that curve does not reach the
    threshold within the horizon; `latest` None with `earliest` set means "possibly, maybe later".
    """

    earliest: float
    likely: float | None
    latest: float | None
    direction: Literal["up", "down"]
