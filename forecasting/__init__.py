"""Forecasters for capacity planning and predictive alerts. Pure computation: no I/O.

    forecast_many(values_2d, horizon, ts=...)   many aligned series at once (the fast path)
    forecast(values, horizon, ts=..., model=)   one series, any method, counters and resets handled
    time_to_threshold(forecast, threshold)      earliest / likely / latest crossing, or None
    crossing_times(batch, thresholds)           the same for every series of a batch (NaN: none)
"""

from forecasting.api import LIBRARY_MODELS, ModelNotFound, forecast, model_names
from forecasting.fast import DEFAULT_LEVEL, MIN_POINTS, forecast_many, seasons_for_step
from forecasting.prepare import counter_rate, last_reset, last_resets, prepare
from forecasting.statistical import ModelUnavailable
from forecasting.threshold import crossing_times, time_to_threshold
from forecasting.types import Crossing, Forecast, ForecastBatch

__all__ = [
    "DEFAULT_LEVEL",
    "LIBRARY_MODELS",
    "MIN_POINTS",
    "Crossing",
    "Forecast",
    "ForecastBatch",
    "ModelNotFound",
    "ModelUnavailable",
    "counter_rate",
    "crossing_times",
    "forecast",
    "forecast_many",
    "last_reset",
    "last_resets",
    "model_names",
    "prepare",
    "seasons_for_step",
    "time_to_threshold",
]
