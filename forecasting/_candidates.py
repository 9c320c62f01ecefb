"""The fast path's candidate forecasters, each over a 2-D array (series x time) at once.

Every candidate is a cheap, explainable rule that is right for some kind of telemetry:

- `snaive`: tomorrow repeats the last day (a series ruled by the clock);
- `snaive_week`: the same hours of last week (weekday/weekend patterns);
- `week_adj`: last week's shape moved to the last day's level (a weekly shape whose level drifts);
- `mean{k}d`: the mean of the last k days' profiles (a daily shape under noise);
- `level7d`, `mlevel7d`: the last value carried along the mean daily profile of the last 7 days,
  added (`level`) or as a ratio (`mlevel`, positive series): a daily shape whose level moves
  within the day, so the last hour says more about the level than the whole last day (M4's Naive2
  is the multiplicative form over a classical decomposition);
- `drift{k}`: the last day plus the average day-over-day change of the last k days, once per
  day ahead (a trend under a daily shape; k=1 in points makes it a random walk with drift);
- `trend3d`, `ltrend3d`: the mean shape of the last 3 days with their trend taken out, continued
  along the trend step by step; `ltrend3d` at the level of the last hour (a disk filling under a
  daily shape and noise: the crossing time of its limit must not lag);
- `hw{g}`: additive Holt-Winters with a damped trend, for a small grid of fixed smoothing constants
  (exponential smoothing without a per-series optimiser: the rolling-origin backtest picks among
  the constants instead, which is both faster and judged on the thing that matters, forecast error);
  the constants are per hour, converted for finer steps.

At steps finer than an hour the daily shapes of `drift` and `trend` are smoothed over an hour, so
single points' noise is not carried into the forecast. With `season=1` the same formulas become
their non-seasonal forms (naive, mean of the last k points, random walk with drift, damped Holt),
plus `line1`, `line2` (least-squares lines through all and the last half of the history) and, on
a grid with a daily period and two days of history, `daydrift` and `ldaydrift` (`drift1` and its
form at the last hour's level, by the day): that is what a history shorter than four days gets. Which candidates are combined, and with what weights, is decided per series by the
rolling-origin backtest in `forecasting.fast`.

All candidates are evaluated at several cut points of the same history (the backtest origins and
the end) in one call; Holt-Winters runs its recursion once and takes its state at every cut.
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = ["HW_GRID", "candidate_names", "evaluate"]

# (alpha, beta, gamma, phi): level, trend and season smoothing, trend damping. Slow to fast.
HW_GRID: tuple[tuple[float, float, float, float], ...] = (
    (0.05, 0.005, 0.05, 0.95),
    (0.1, 0.01, 0.1, 0.9),
    (0.3, 0.02, 0.2, 0.9),
    (0.5, 0.05, 0.3, 0.8),
)
_MEAN_DAYS = (2, 3, 7)
_DRIFT_DAYS = (1, 2, 3, 7, 14)
_TREND_DAYS = (3,)
_LINE_PARTS = (1, 2)  # a line through the last 1/k of the history


def candidate_names(season: int, week: int | None) -> list[str]:
    names = ["snaive"]
    if week:
        names += ["snaive_week", "week_adj"]
    names += [f"mean{k}d" for k in _MEAN_DAYS]
    if season > 1:
        names += ["level7d", "mlevel7d"]
    names += [f"drift{k}" for k in _DRIFT_DAYS]
    if season > 1:
        names += [f"{p}trend{k}d" for k in _TREND_DAYS for p in ("", "l")]
    else:
        names += [f"line{k}" for k in _LINE_PARTS] + ["daydrift", "ldaydrift"]
    names += [f"hw{g}" for g in range(len(HW_GRID))]
    return names


def _tile(X: np.ndarray, period: int, h: int) -> np.ndarray:
    n = X.shape[1]
    return X[:, n - period + (np.arange(h) % period)]


def _slicing(X: np.ndarray, h: int, season: int, week: int | None, day: int = 0) -> dict[str, np.ndarray]:
    """The candidates that only look at the tail of X: (series, h) each; absent when X is too short."""
    n = X.shape[1]
    m = season
    out: dict[str, np.ndarray] = {}
    if n < m:
        return out
    last_day = _tile(X, m, h)
    out["snaive"] = last_day
    if week and n >= week + m:
        out["snaive_week"] = _tile(X, week, h)
        shift = X[:, n - m :].mean(axis=1) - X[:, n - week - m : n - week].mean(axis=1)
        out["week_adj"] = out["snaive_week"] + shift[:, None]
    reps = -(-h // m)
    for k in _MEAN_DAYS:
        if n >= k * m:
            profile = X[:, n - k * m :].reshape(X.shape[0], k, m).mean(axis=1)
            out[f"mean{k}d"] = np.tile(profile, (1, reps))[:, :h]
    if m > 1 and n >= 7 * m:
        profile = X[:, n - 7 * m :].reshape(X.shape[0], 7, m).mean(axis=1)  # slot i: time of day (n + i) % m
        slots = np.arange(h) % m
        shape = profile - profile.mean(axis=1, keepdims=True)
        out["level7d"] = X[:, -1:] - shape[:, -1:] + shape[:, slots]
        with np.errstate(divide="ignore", invalid="ignore"):
            index = profile / profile.mean(axis=1, keepdims=True)
            ratio = X[:, -1:] / index[:, -1:] * index[:, slots]
        positive = (X[:, n - 7 * m :] > 0).all(axis=1)[:, None]
        out["mlevel7d"] = np.where(positive & np.isfinite(ratio), ratio, np.nan)
    for k in _DRIFT_DAYS:
        if n >= (k + 1) * m:
            out[f"drift{k}"] = _along_trend(X, _daily_slope(X, k, m), 1, m, h)
    if m > 1:
        for k in _TREND_DAYS:
            if n >= (k + 1) * m:
                slope = _daily_slope(X, k, m)
                out[f"trend{k}d"] = _along_trend(X, slope, k, m, h)
                out[f"ltrend{k}d"] = _along_trend(X, slope, k, m, h, anchor=True)
    else:
        for k in _LINE_PARTS:
            w = n // k
            if w >= 4:
                out[f"line{k}"] = _line(X[:, n - w :], h)
        if day > 1 and n >= 2 * day:  # a daily shape, two days before the season is modelled
            slope = _daily_slope(X, 1, day)
            out["daydrift"] = _along_trend(X, slope, 1, day, h)
            out["ldaydrift"] = _along_trend(X, slope, 1, day, h, anchor=True)
    return out


def _daily_slope(X: np.ndarray, k: int, m: int) -> np.ndarray:
    """Change per point: the mean day-over-day change of the last k days, over a day's points."""
    n = X.shape[1]
    return (X[:, n - m :] - X[:, n - (k + 1) * m : n - k * m]).mean(axis=1) / (k * m)


def _along_trend(X: np.ndarray, slope: np.ndarray, days: int, m: int, h: int, anchor: bool = False) -> np.ndarray:
    """The mean daily shape of the last `days` days with the trend `slope` (per point) taken out,
    continued along that trend step by step. With one day this is the last day plus the daily
    change per day ahead (`drift`); at steps finer than an hour the shape is smoothed over an hour,
    so the noise of single points is not carried into the forecast. With `anchor`, the whole curve
    is moved by how far the series lay from it over the last hour (the last point, hourly): the
    level of the last hour, as `level7d` carries it, with the trend and shape of the days."""
    n = X.shape[1]
    pos = np.arange(n - days * m, n)
    profile = (X[:, n - days * m :] - slope[:, None] * pos).reshape(X.shape[0], days, m).mean(axis=1)
    if m > 24:
        profile = _circular_mean(profile, m // 24)
    if anchor:
        a = max(1, m // 24)
        fitted = profile[:, m - a :] + slope[:, None] * np.arange(n - a, n)
        profile = profile + (X[:, n - a :] - fitted).mean(axis=1)[:, None]
    return profile[:, np.arange(h) % m] + slope[:, None] * np.arange(n, n + h)


def _circular_mean(P: np.ndarray, width: int) -> np.ndarray:
    """Moving mean of each row over `width` neighbouring slots, wrapping around the day."""
    left = width // 2
    padded = np.concatenate([P[:, P.shape[1] - left :], P, P[:, : width - 1 - left]], axis=1)
    c = np.cumsum(np.concatenate([np.zeros((P.shape[0], 1)), padded], axis=1), axis=1)
    return (c[:, width:] - c[:, :-width]) / width


def _line(X: np.ndarray, h: int) -> np.ndarray:
    """The least-squares line through each row of X, continued h steps."""
    w = X.shape[1]
    t = np.arange(w) - (w - 1) / 2
    slope = (X * t).sum(axis=1) / (t * t).sum()
    return X.mean(axis=1)[:, None] + slope[:, None] * ((w - 1) / 2 + np.arange(1, h + 1))


def _holt_winters(X: np.ndarray, cuts: list[int], h: int, m: int, per_hour: float = 1.0) -> list[np.ndarray | None]:
    """Forecasts (series, h, grid) from each cut (a history length), one recursion over time.

    The level and trend smoothing and the damping of `HW_GRID` are per hour: with `per_hour` (> 1)
    points an hour, a weight a becomes 1 - (1 - a) ** (1 / per_hour) per point and the damping
    phi ** (1 / per_hour), so a 5-minute series keeps its trend as long (in time) as an hourly one
    (with phi = 0.9 per point, a 5-minute trend died out within the hour). The seasonal weight is
    per visit of a slot, once a day at any step, and stays.

    Initial state: level = mean of the first season, trend = the change to the second season's
    mean per point, seasonal = the first season minus its mean. Needs 3 seasons before a cut.
    """
    S, n = X.shape
    grid = np.array(HW_GRID)
    if m == 1:
        grid[:, 2] = 0.0  # no season: the "seasonal" offset stays zero and Holt-Winters is damped Holt
    k = 1.0 / max(per_hour, 1.0)
    grid[:, 0] = 1 - (1 - grid[:, 0]) ** k
    grid[:, 1] = 1 - (1 - grid[:, 1]) ** k
    grid[:, 3] **= k
    alpha, beta, gamma, phi = (grid[:, i][None, :] for i in range(4))
    G = len(grid)
    out: list[np.ndarray | None] = [None] * len(cuts)
    if n < 3 * m:
        return out
    first = X[:, :m].mean(axis=1)
    level = np.repeat(first[:, None], G, axis=1)
    trend = np.repeat(((X[:, m : 2 * m].mean(axis=1) - first) / m)[:, None], G, axis=1)
    season = np.repeat((X[:, :m] - first[:, None])[:, :, None], G, axis=2)  # slot t % m
    steps = np.arange(1, h + 1)
    damp = np.cumsum(phi[0][None, :] ** steps[:, None], axis=0)  # (h, G)
    wanted = {c: i for i, c in enumerate(cuts) if c >= 3 * m}
    for t in range(m, n + 1):
        if t in wanted:
            slots = (t + steps - 1) % m
            out[wanted[t]] = level[:, None, :] + damp[None] * trend[:, None, :] + season[:, slots, :]
        if t == n:
            break
        y = X[:, t][:, None]
        s_old = season[:, t % m]
        prev = level
        level = alpha * (y - s_old) + (1 - alpha) * (level + phi * trend)
        trend = beta * (level - prev) + (1 - beta) * phi * trend
        season[:, t % m] = gamma * (y - level) + (1 - gamma) * s_old
    return out


def evaluate(
    X: np.ndarray, cuts: list[int], h: int, season: int, week: int | None, names: list[str] | None = None,
    per_hour: float = 1.0,
) -> np.ndarray:
    """Each candidate's forecast of `h` steps from each cut: (series, candidate, cut, h) in the order
    of `names` (default: all), NaN where the history before a cut is too short for that candidate.
    Non-negative series get non-negative forecasts."""
    S = X.shape[0]
    names = names if names is not None else candidate_names(season, week)
    day = int(round(24 * per_hour))  # points a day, for the daily candidates of a history without a season
    day = day if season == 1 and per_hour >= 1 and abs(24 * per_hour - day) < 1e-6 else 0
    index = {name: i for i, name in enumerate(names)}
    out = np.full((S, len(names), len(cuts), h), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for ci, cut in enumerate(cuts):
            for name, f in _slicing(X[:, :cut], h, season, week, day).items():
                if name in index:
                    out[:, index[name], ci] = f
        wanted = [(g, index[f"hw{g}"]) for g in range(len(HW_GRID)) if f"hw{g}" in index]
        if wanted:
            for ci, f in enumerate(_holt_winters(X[:, : max(cuts)], cuts, h, season, per_hour)):
                if f is not None:
                    for g, c in wanted:
                        out[:, c, ci] = f[:, :, g]
    nonneg = (X.min(axis=1) >= 0)[:, None, None, None]
    np.maximum(out, 0.0, out=out, where=nonneg)  # NaN stays NaN
    return out
