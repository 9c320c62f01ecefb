"""Straightforward per-series Python implementations of the detectors, for speed ratios only.

Each keeps plain Python state per series and handles one point at a time, the way a first
implementation would; bench/detectors.py times them on a subset of series in the same run.
"""

from __future__ import annotations

import math
import statistics


def _tail_score(z: float) -> float:
    p = math.erfc(abs(z) / math.sqrt(2))
    return min(1.0, -math.log10(p) / 10) if p > 0 else 1.0


class Ewma:
    def __init__(self, alpha=0.05):
        self.alpha, self.mean, self.var, self.n = alpha, 0.0, 0.0, 0

    def step(self, t, x):
        if self.n == 0:
            self.mean, self.n = x, 1
            return 0.0
        sd = max(math.sqrt(self.var), 1e-3 * abs(self.mean), 1e-9)
        score = _tail_score((x - self.mean) / sd)
        a = max(self.alpha, 1 / (self.n + 1))
        d = x - self.mean
        self.mean += a * d
        self.var = (1 - a) * (self.var + a * d * d)
        self.n += 1
        return score


class Robust:
    def __init__(self, window=32):
        self.window, self.values = window, []

    def step(self, t, x):
        score = 0.0
        if self.values:
            med = statistics.median(self.values)
            mad = statistics.median(abs(v - med) for v in self.values)
            score = _tail_score((x - med) / max(1.4826 * mad, 1e-3 * abs(med), 1e-9))
        self.values = (self.values + [x])[-self.window :]
        return score


class LevelShift:
    def __init__(self, alpha=0.01, drift=0.5, threshold=10.0):
        self.ewma = Ewma(alpha)
        self.up = self.down = 0.0
        self.drift, self.threshold = drift, threshold

    def step(self, t, x):
        e = self.ewma
        if e.n:
            sd = max(math.sqrt(e.var), 1e-3 * abs(e.mean), 1e-9)
            z = max(-8.0, min(8.0, (x - e.mean) / sd))
            self.up = max(0.0, self.up + z - self.drift)
            self.down = max(0.0, self.down - z - self.drift)
        e.step(t, x)
        return min(1.0, max(self.up, self.down) / self.threshold * 0.4)


class Seasonal:
    def __init__(self, bins=24):
        self.bins, self.level, self.n, self.var = bins, 0.0, 0, 0.0
        self.day = [0.0] * bins
        self.week = [0.0] * 7

    def step(self, t, x):
        b = int((t % 86400) / 86400 * self.bins)
        d = int((t // 86400 + 3) % 7)
        if self.n == 0:
            self.level, self.n = x, 1
            return 0.0
        center = self.level + self.day[b] + self.week[d]
        resid = x - center
        score = _tail_score(resid / max(math.sqrt(self.var), 1e-3 * abs(center), 1e-9))
        self.level += max(0.02, 1 / (self.n + 1)) * (x - self.day[b] - self.week[d] - self.level)
        step = 0.1 * (x - self.level - self.week[d] - self.day[b])
        self.day = [v - step / self.bins for v in self.day]
        self.day[b] += step
        av = max(0.01, 1 / (self.n + 1))
        self.var = (1 - av) * (self.var + av * resid * resid)
        self.n += 1
        return score


class Ensemble:
    """The default ensemble's members and calibration, one Python object per series."""

    def __init__(self, bins=24):
        self.level = Ewma(0.05)
        self.err_var, self.err_n = 0.0, 0
        self.slow = Ewma(0.0005)
        self.slow_var, self.slow_n = 0.0, 0
        self.bins = bins
        self.day_mean, self.day_var, self.day_n = [0.0] * bins, [0.0] * bins, [0] * bins
        self.cal = [[0.0, 0.0, 0.0, 0], [0.0, 0.0, 0.0, 0], [0.0, 0.0, 0.0, 0]]
        self.el = self.ed = None
        self.lo, self.hi, self.peak, self.n, self.first = math.inf, -math.inf, 0.0, 0, None
        self.prev, self.changes, self.rough_record = None, [], 0.0

    def _calibrated(self, c, raw):
        c[0] += 0.05 * (raw - c[0])
        out = 0.0
        if c[3] >= 2:
            tail = 0.5 * math.erfc((c[0] - c[1]) / max(math.sqrt(c[2]), 1e-3) / math.sqrt(2))
            out = min(1.0, max(0.0, -math.log10(tail + 1e-10) / 10))
        b = max(0.001, 1 / (c[3] + 1))
        d = c[0] - c[1]
        c[1] += b * d
        c[2] = (1 - b) * (c[2] + b * d * d)
        c[3] += 1
        return out

    def step(self, t, x):
        if self.first is None:
            self.first = t
        z = 0.0
        before = self.level.mean if self.level.n else None
        if before is not None:
            err = x - before
            if self.err_n >= 2:
                z = min(abs(err) / max(math.sqrt(self.err_var), 1e-9), 10.0)
            b = max(0.01, 1 / (self.err_n + 1))
            self.err_var = max((1 - b) * self.err_var + b * err * err, (1e-3 * abs(before)) ** 2)
            self.err_n += 1
        self.level.step(t, x)
        zs = 0.0
        if self.slow.n:
            err = x - self.slow.mean
            if self.slow_n >= 2:
                zs = min(abs(err) / max(math.sqrt(self.slow_var), 1e-9), 10.0)
            b = max(0.01, 1 / (self.slow_n + 1))
            self.slow_var = max((1 - b) * self.slow_var + b * err * err, (1e-3 * abs(self.slow.mean)) ** 2)
            self.slow_n += 1
        self.slow.step(t, x)
        spread = self.hi - self.lo
        k = int((t % 86400) / 86400 * self.bins)
        s = max(self._calibrated(self.cal[0], z), self._calibrated(self.cal[2], zs))
        if self.day_n[k]:
            e = x - self.day_mean[k]
            if self.day_n[k] >= 3:
                sd = max(math.sqrt(self.day_var[k]), 1e-3 * spread, 1e-9)
                sd_score = self._calibrated(self.cal[1], min(abs(e) / sd, 10.0))
                if self.el is not None and self.ed is not None and self.ed < 0.5 * self.el:
                    s = max(s, sd_score)
                self.ed = abs(e) if self.ed is None else self.ed + 0.005 * (abs(e) - self.ed)
            a = max(0.1, 1 / (self.day_n[k] + 1))
            self.day_mean[k] += a * e
            self.day_var[k] = (1 - a) * self.day_var[k] + a * e * e
        else:
            self.day_mean[k] = x
        self.day_n[k] += 1
        if before is not None:
            self.el = abs(x - before) if self.el is None else self.el + 0.005 * (abs(x - before) - self.el)
        if t - self.first >= 86400 and spread > 0 and (x > self.hi + 0.05 * spread or x < self.lo - 0.05 * spread):
            s = max(s, 0.9)
        self.lo, self.hi = min(self.lo, x), max(self.hi, x)
        if self.prev is not None:
            self.changes = [abs(x - self.prev), *self.changes[:2]]
            if len(self.changes) == 3:
                moved = min(self.changes)
                if t - self.first >= 86400 and self.rough_record > 0 and moved > 1.2 * self.rough_record:
                    s = max(s, 0.9)
                self.rough_record = max(self.rough_record, moved)
        self.prev = x
        if self.n < 150:
            s = 0.0
        if s > self.peak + 0.1:
            out, self.peak = s, s
        else:
            out, self.peak = 0.0, max(min(s, self.peak), self.peak * 0.5 ** (1 / 50))
        self.n += 1
        return out


REFERENCES = {"ewma_zscore": Ewma, "robust_mad": Robust, "level_shift": LevelShift, "seasonal": Seasonal, "ensemble": Ensemble}
