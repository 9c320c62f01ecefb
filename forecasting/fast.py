"""The fast path: forecast thousands of series in one numpy pass, choosing per series by backtest.

For each series, every candidate of `forecasting._candidates` forecasts from several recent
origins of the series' own history (rolling origin: cut the history, forecast the next steps,
compare with what happened). The candidates with the lowest error on the most recent windows are
combined, weighted by the inverse square of that error: combining the few best beats picking one,
because the backtest ranks candidates with noise and their errors partly cancel.

The prediction interval comes from the same backtest, nested: for each of several earlier windows
the whole procedure (rank, pick, weigh) is rerun on the windows known before it, and its errors
there are kept; they are pooled over neighbouring horizon steps (so the interval widens with the
horizon as the errors do), and the split-conformal quantile of their absolute values is the
half-width. No distribution is assumed, so the interval is as wide as the procedure's errors on
this series actually were; its coverage on the forecast-dev benchmark is measured in
docs/forecasting.md. `backtest_error` is the mean absolute error of those nested forecasts.

Rows may be ragged (leading NaN: a series seen later than others); gaps inside are carried forward.
Series are grouped by the length of history they have, so each group is one rectangular pass.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np

from forecasting._candidates import candidate_names, evaluate
from forecasting.prepare import last_resets
from forecasting.types import ForecastBatch, Status

__all__ = ["DEFAULT_LEVEL", "MIN_POINTS", "forecast_many", "seasons_for_step"]

# more candidates from outside the fast path: (X, cuts, h, season) -> name -> (series, cuts, h)
ExtraCandidates = Callable[[np.ndarray, list[int], int, int], dict[str, np.ndarray]]

DEFAULT_LEVEL = 0.8
MIN_POINTS = 8  # below this, no method here forecasts with an honest interval
_SELECT_WINDOWS = 7  # most recent backtest windows that rank the candidates
_INTERVAL_WINDOWS = 7  # windows whose errors make the interval
_TOP_K = 4  # candidates combined
_POOL = 3  # interval errors pooled over steps j-3 .. j+3
_SEASONAL_DAYS = 4  # a daily season is used from this many days of history
_DAY, _WEEK = 86400.0, 7 * 86400.0


def seasons_for_step(step_s: float) -> tuple[int, int | None]:
    """(points per day, points per week) for a sampling step; (1, None) when a day is not a whole
    number of steps or a step is a day or longer (no daily season to model)."""
    if not step_s > 0:
        return 1, None
    day = _DAY / step_s
    if day < 2 or abs(day - round(day)) > 1e-6:
        return 1, None
    return int(round(day)), int(round(_WEEK / step_s))


def forecast_many(
    values: np.ndarray,
    horizon: int,
    *,
    ts: np.ndarray | None = None,
    step: float | None = None,
    last_ts: float | None = None,
    level: float = DEFAULT_LEVEL,
    season: int | None = None,
    week: int | None = None,
    candidates: Sequence[str] | None = None,
    extra: ExtraCandidates | None = None,
    max_history: int | None = None,
    min_points: int = MIN_POINTS,
    resets: bool = False,
    chunk: int = 128,
) -> ForecastBatch:
    """Forecast every row of `values` (series x time, one shared time grid) `horizon` steps ahead.

    The grid is `ts` (one timestamp per column), or `step` seconds ending at `last_ts`. The daily
    and weekly seasons (in points) follow from the step unless given; a row with fewer than
    `_SEASONAL_DAYS` days of history is forecast without a season. `candidates` restricts the
    methods (names from `candidate_names`, e.g. ["snaive"]); `max_history` caps the points used
    (default: six weeks). With `resets`, each row is forecast from after its last lasting drop
    (`prepare.last_resets`; for gauges such as disk usage; counters should be turned into rates
    first). Returns NaN rows with status "too_short" for rows with fewer than `min_points` points.
    """
    X = np.array(values, dtype=np.float64, ndmin=2)
    S, n = X.shape
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if horizon < 1:
        raise ValueError(f"horizon must be at least 1, got {horizon}")
    if ts is not None:
        ts = np.asarray(ts, dtype=np.float64)
        if len(ts) != n:
            raise ValueError(f"ts has {len(ts)} timestamps for {n} columns")
        step = float(np.median(np.diff(ts))) if n > 1 else (step or 1.0)
        last_ts = float(ts[-1])
    step = step if step is not None else 1.0
    last_ts = last_ts if last_ts is not None else float(n - 1) * step
    day, wk = seasons_for_step(step)
    day = season if season is not None else day
    wk = week if week is not None else wk
    max_history = max_history or (6 * wk if wk else max(6 * 7 * day, 1024))
    future = last_ts + step * np.arange(1, horizon + 1)

    X = _carry_forward(X)
    if resets:  # a gauge that was reset (a disk cleaned up) is forecast from after its last reset
        cut = last_resets(X, day)
        X[np.arange(n)[None, :] < cut[:, None]] = np.nan
    lengths = np.where(np.isfinite(X).any(axis=1), n - np.argmax(np.isfinite(X), axis=1), 0)
    yhat = np.full((S, horizon), np.nan)
    lower, upper = yhat.copy(), yhat.copy()
    error = np.full(S, np.nan)
    model = ["none"] * S
    status: list[Status] = ["ok"] * S
    reason = [""] * S
    short = lengths < min_points
    for i in np.flatnonzero(short):
        status[i] = "too_short"
        reason[i] = f"too short: need {min_points} points, got {int(lengths[i])}"

    # group rows by the history they have: seasonal or not, and the length they are cut to
    m_row = np.where(lengths >= _SEASONAL_DAYS * day, day, 1) if day > 1 else np.ones(S, dtype=int)
    used = np.minimum(lengths, max_history)
    used = np.where(m_row > 1, used - used % np.maximum(m_row, 1), np.where(used >= 16, used - used % 8, used))
    for m, length in sorted({(int(m_row[i]), int(used[i])) for i in np.flatnonzero(~short)}):
        rows = np.flatnonzero(~short & (m_row == m) & (used == length))
        w = wk if m > 1 else None
        for start in range(0, len(rows), chunk):
            r = rows[start : start + chunk]
            out = _forecast_block(X[r, n - length :], horizon, m, w, level, candidates, extra, 3600.0 / step)
            yhat[r], lower[r], upper[r], error[r] = out[0], out[1], out[2], out[3]
            for i, name in zip(r, out[4]):
                model[i] = name
                if not np.isfinite(upper[i]).all():  # a named method that needs more history than this
                    status[i] = "too_short"
                    reason[i] = f"too short for {name}: no backtest window fits in {length} points"
                    yhat[i] = lower[i] = upper[i] = np.nan
    return ForecastBatch(future, yhat, lower, upper, model, error, level, status, reason)


def _carry_forward(X: np.ndarray) -> np.ndarray:
    """Fill gaps inside each row with the last value before them; leading NaN stay."""
    bad = ~np.isfinite(X)
    if not bad.any():
        return X
    idx = np.where(bad, 0, np.arange(X.shape[1])[None, :])
    np.maximum.accumulate(idx, axis=1, out=idx)
    filled = X[np.arange(X.shape[0])[:, None], idx]
    first_ok = np.argmax(~bad, axis=1)
    filled[np.arange(X.shape[1])[None, :] < first_ok[:, None]] = np.nan
    return filled


def _forecast_block(
    X: np.ndarray, h: int, m: int, week: int | None, level: float, only: Sequence[str] | None,
    extra: ExtraCandidates | None = None, per_hour: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """One rectangular group: (yhat, lower, upper, backtest MAE, model names)."""
    S, n = X.shape
    min_cut = 3 * m if m > 1 else 3
    # backtest horizon: all of h when the history allows; without a season, at most half the history
    # (so that several windows fit, each with enough history before it)
    hb = max(1, min(h, n - min_cut)) if m > 1 else max(1, min(h, n // 2))
    stride = m if m > 1 else max(1, hb // 4)
    gap = -(-hb // stride)
    # seasonal windows start at the forecast's time of day (a whole number of days back), so a rule
    # that is wrong at one time of day is judged there
    first = gap * stride if m > 1 else hb
    origins = [first + stride * j for j in range(_INTERVAL_WINDOWS + gap + _SELECT_WINDOWS)]
    cuts = [n - o for o in origins if n - o >= min(min_cut, n - 1)]
    names = [c for c in candidate_names(m, week) if only is None or c in only]
    F = evaluate(X, [n, *cuts], h, m, week, names, per_hour)  # (S, C, 1 + W, h)
    if extra is not None:
        more = extra(X, [n, *cuts], h, m)
        F = np.concatenate([F, np.stack(list(more.values()), axis=1)], axis=1)
        names += list(more)
    if not names:
        raise ValueError(f"no forecaster among {list(only or [])}; available: {candidate_names(m, week)}")
    W = len(cuts)
    actual = np.stack([X[:, c : c + hb] for c in cuts], axis=1)  # (S, W, hb)
    errors = F[:, :, 1:, :hb] - actual[:, None]  # (S, C, W, hb); NaN where a candidate had no forecast
    final = F[:, :, 0]  # (S, C, h)
    diffs = np.abs(X[:, m:] - X[:, :-m]) if n > m else np.abs(np.diff(X, axis=1))
    scale = diffs.mean(axis=1) if diffs.shape[1] else np.zeros(S)
    scale = np.maximum(scale, 1e-9 * (np.abs(X).mean(axis=1) + 1e-9))
    window_err = np.abs(errors).mean(axis=3) / scale[:, None, None]  # (S, C, W)
    k = min(_TOP_K, len(names))

    def combination(ranking: slice, usable: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Weights (S, C) of the k best by mean error over the `ranking` windows, among `usable`."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            rank_err = np.nanmean(window_err[:, :, ranking], axis=2)
        rank_err = np.where(np.isfinite(rank_err) & usable, rank_err, np.inf)
        top = np.argsort(rank_err, axis=1, kind="stable")[:, :k]
        top_err = np.take_along_axis(rank_err, top, axis=1)
        w = np.where(np.isfinite(top_err), 1.0 / np.maximum(top_err, 1e-6) ** 2, 0.0)
        w[w.sum(axis=1) == 0, 0] = 1.0  # nothing backtested: the first usable candidate
        full = np.zeros((S, len(names)))
        np.put_along_axis(full, top, w / w.sum(axis=1, keepdims=True), axis=1)
        return full, top

    weights, top = combination(slice(0, _SELECT_WINDOWS), np.isfinite(final).all(axis=2))
    yhat = np.einsum("sc,sch->sh", weights, np.nan_to_num(final))

    # The procedure's own errors: at each interval window, choose and weigh the candidates from the
    # windows whose outcomes were known by then, as the forecast above was, and score that
    # combination. Errors of the same combination on the windows that chose it would be optimistic.
    # (`gap` windows older than a window ended before that window's origin)
    combo_err = np.full((S, min(_INTERVAL_WINDOWS, W), hb), np.nan)
    for w in range(combo_err.shape[1]):
        if w + gap < W:
            wts, _ = combination(slice(w + gap, w + gap + _SELECT_WINDOWS), np.isfinite(errors[:, :, w]).all(axis=2))
        else:  # a short history has no older windows to choose from: the forecast's own combination
            wts = weights
        combo_err[:, w] = np.einsum("sc,scj->sj", wts, np.where(wts[:, :, None] > 0, errors[:, :, w], 0.0))
    q = _interval_halfwidth(combo_err, h, level)
    lower, upper = yhat - q, yhat + q
    nonneg = X.min(axis=1) >= 0
    lower[nonneg] = np.maximum(lower[nonneg], 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mae = np.nanmean(np.abs(combo_err[:, :_SELECT_WINDOWS]), axis=(1, 2))
    labels = []
    for s in range(S):
        members = [names[c] for c in top[s] if weights[s, c] > 0]
        labels.append("+".join(members))
    return yhat, lower, upper, mae, labels


def _interval_halfwidth(err: np.ndarray, h: int, level: float) -> np.ndarray:
    """Half-width per series and step: the split-conformal `level` quantile of |error| over the
    windows and steps j-_POOL..j+_POOL; past the backtested steps it grows as the square root of
    the step."""
    S, W, hb = err.shape
    a = np.abs(err)
    q = np.empty((S, h))
    for j in range(hb):
        pool = a[:, :, max(0, j - _POOL) : j + _POOL + 1].reshape(S, -1)
        q[:, j] = conformal_quantile(pool, level)
    if hb < h:
        q[:, hb:] = q[:, hb - 1 : hb] * np.sqrt(np.arange(hb + 1, h + 1) / hb)[None, :]
    return q


def conformal_quantile(pool: np.ndarray, level: float) -> np.ndarray:
    """The ceil((N+1) level)-th smallest of each row's N finite values (split conformal); past the
    largest, the largest scaled up as a normal tail would be."""
    srt = np.sort(np.where(np.isfinite(pool), pool, np.inf), axis=1)
    count = np.isfinite(pool).sum(axis=1)
    rank = np.ceil((count + 1) * level).astype(int)
    inside = rank <= count
    idx = np.clip(rank - 1, 0, pool.shape[1] - 1)
    q = np.take_along_axis(srt, idx[:, None], axis=1)[:, 0]
    short = ~inside & (count > 0)
    if short.any():  # too few errors for the rank: the largest, widened by the ratio of normal quantiles
        top = np.take_along_axis(srt[short], (count[short] - 1)[:, None], axis=1)[:, 0]
        z = _normal_quantile(0.5 + level / 2) / _normal_quantile(0.5 + count[short] / (count[short] + 1) / 2)
        q[short] = top * np.maximum(z, 1.0)
    q[count == 0] = np.nan
    return q


def _normal_quantile(p: np.ndarray | float) -> np.ndarray:
    from statistics import NormalDist

    return np.vectorize(NormalDist().inv_cdf)(np.clip(p, 1e-12, 1 - 1e-12))

