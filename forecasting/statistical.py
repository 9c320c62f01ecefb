"""Library forecasters, one series at a time: Holt-Winters and automatic ETS (statsmodels), Prophet.

They are slower than the fast path by two to three orders of magnitude (an optimiser per series),
so they are chosen by name (`model=` / `aiops forecast --model`) for series that warrant them, not
run on the whole fleet. Each returns (yhat, lower, upper) with the library's own interval:
Holt-Winters from simulated future paths, ETS from its state-space formulas, Prophet from its
sampled trend uncertainty. Prophet is imported only when used; without it installed, asking for it
raises `ModelUnavailable`.
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = ["ModelUnavailable", "ets_auto", "holt_winters", "holt_winters_candidate", "prophet"]


class ModelUnavailable(RuntimeError):
    """A forecaster whose library is not installed or cannot run here."""


def _quiet():
    ctx = warnings.catch_warnings()
    ctx.__enter__()
    warnings.simplefilter("ignore")
    return ctx


def holt_winters(
    value: np.ndarray, horizon: int, season: int, level: float = 0.8, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Additive damped trend + additive season (when two seasons of history exist), fitted by
    statsmodels; the interval from the quantiles of 500 simulated paths."""
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    seasonal = season if season > 1 and len(value) >= 2 * season + 2 else None
    ctx = _quiet()
    try:
        fit = ExponentialSmoothing(
            value, trend="add", damped_trend=True, seasonal="add" if seasonal else None, seasonal_periods=seasonal
        ).fit()
        yhat = fit.forecast(horizon)
        paths = fit.simulate(horizon, repetitions=500, error="add", random_state=np.random.default_rng(seed))
    finally:
        ctx.__exit__(None, None, None)
    paths = np.asarray(paths).reshape(horizon, -1)
    tail = (1 - level) / 2
    return np.asarray(yhat), np.quantile(paths, tail, axis=1), np.quantile(paths, 1 - tail, axis=1)


def holt_winters_candidate(X: np.ndarray, cuts: list[int], h: int, season: int) -> dict[str, np.ndarray]:
    """statsmodels Holt-Winters as one more candidate of the fast path's backtest ("sm_hw").

    Per series, the parameters and initial state are fitted once, by maximum likelihood, on the
    history before the oldest backtest origin; from every cut the same model is then run forward
    with those parameters fixed and forecasts `h` steps. So the backtest judges exactly what the
    final forecast does, and no origin sees its own future. One optimiser per series: seconds per
    hundred series, not the fast path's thousands per second.
    """
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    S = X.shape[0]
    out = np.full((S, len(cuts), h), np.nan)
    first = min(cuts)
    seasonal = season if season > 1 and first >= 2 * season + 2 else None
    if first < 10:
        return {"sm_hw": out}
    spec = {"trend": "add", "damped_trend": True, "seasonal": "add" if seasonal else None, "seasonal_periods": seasonal}
    ctx = _quiet()
    try:
        for s in range(S):
            try:
                p = ExponentialSmoothing(X[s, :first], **spec).fit().params
                for ci, cut in enumerate(cuts):
                    model = ExponentialSmoothing(
                        X[s, :cut], **spec, initialization_method="known", initial_level=p["initial_level"],
                        initial_trend=p["initial_trend"], initial_seasonal=p["initial_seasons"] if seasonal else None,
                    )  # fmt: skip
                    fit = model.fit(
                        smoothing_level=p["smoothing_level"], smoothing_trend=p["smoothing_trend"],
                        smoothing_seasonal=p["smoothing_seasonal"] if seasonal else None,
                        damping_trend=p["damping_trend"], optimized=False,
                    )  # fmt: skip
                    out[s, ci] = fit.forecast(h)
            except (ValueError, np.linalg.LinAlgError):
                continue
    finally:
        ctx.__exit__(None, None, None)
    return {"sm_hw": out}


def ets_auto(value: np.ndarray, horizon: int, season: int, level: float = 0.8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """statsmodels ETSModel over additive forms (error A; trend none / additive / damped; season
    none / additive when the history allows), the lowest AICc kept; its analytic interval.

    Seasonal forms start from the heuristic initial state (a decomposition of the first seasons):
    with the initial seasonal states estimated by the optimiser as well, the fits are ten times
    slower and often poor, and AICc then picks a non-seasonal trend that runs away."""
    import pandas as pd
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    value = pd.Series(value)  # its prediction summary wants an index

    seasons = [None, season] if season > 1 and len(value) >= 2 * season + 2 else [None]
    best = None
    ctx = _quiet()
    try:
        for s in seasons:
            for trend, damped in ((None, False), ("add", False), ("add", True)):
                try:
                    fit = ETSModel(
                        value, error="add", trend=trend, damped_trend=damped,
                        seasonal="add" if s else None, seasonal_periods=s,
                        initialization_method="heuristic" if s else "estimated",
                    ).fit(disp=False)  # fmt: skip
                except (ValueError, np.linalg.LinAlgError):
                    continue
                if np.isfinite(fit.aicc) and (best is None or fit.aicc < best.aicc):
                    best = fit
        if best is None:
            raise ValueError("no ETS form could be fitted")
        frame = best.get_prediction(start=len(value), end=len(value) + horizon - 1).summary_frame(alpha=1 - level)
    finally:
        ctx.__exit__(None, None, None)
    return frame["mean"].to_numpy(), frame["pi_lower"].to_numpy(), frame["pi_upper"].to_numpy()


def prophet(ts: np.ndarray, value: np.ndarray, horizon: int, step: float, level: float = 0.8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Prophet with its bundled Stan model (no download), daily seasonality on, weekly when a
    fortnight of history exists; its own `level` interval."""
    import logging

    for name in ("prophet", "prophet.plot", "cmdstanpy"):  # plotly missing, Stan chain progress: not ours
        log = logging.getLogger(name)
        log.setLevel(logging.CRITICAL)
        if not log.handlers:  # cmdstanpy installs its own INFO handler unless the logger has one
            log.addHandler(logging.NullHandler())
        log.propagate = False
    try:
        import pandas as pd
        from prophet import Prophet
    except ImportError as exc:
        raise ModelUnavailable("prophet is not installed (pip install prophet)") from exc
    frame = pd.DataFrame({"ds": pd.to_datetime(ts, unit="s"), "y": value})
    span = float(ts[-1] - ts[0]) if len(ts) > 1 else 0.0
    model = Prophet(
        interval_width=level, daily_seasonality=True, weekly_seasonality=span >= 14 * 86400, yearly_seasonality=False
    )
    ctx = _quiet()
    try:
        model.fit(frame)
        future = pd.DataFrame({"ds": pd.to_datetime(ts[-1] + step * np.arange(1, horizon + 1), unit="s")})
        out = model.predict(future)
    finally:
        ctx.__exit__(None, None, None)
    return out["yhat"].to_numpy(), out["yhat_lower"].to_numpy(), out["yhat_upper"].to_numpy()
