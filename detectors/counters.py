"""Counters into rates, before detection: a counter's value only ever grows, its rate is the signal.

A request counter sampled every 15 s says nothing by its level; its increase per second does. A
counter that resets (a process restarts) drops to near zero: that drop is not an anomaly, so a
decrease is read as a reset and the new value as the increase since the reset (Prometheus' rate()
makes the same choice). The first sample of a series has no rate yet and comes out as NaN, which
detectors skip.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from detectors.types import MetricBatch

__all__ = ["CounterRate"]

_LAST_VALUE, _LAST_TS, _SEEN = 0, 1, 2


@numba.njit(cache=True, nogil=True)
def _rate_kernel(sid, ts, x, state, out):
    for i in range(sid.shape[0]):
        row = state[sid[i]]
        v = x[i]
        if not np.isfinite(v):
            out[i] = np.nan
            continue
        if row[_SEEN] > 0.0 and ts[i] > row[_LAST_TS]:
            increase = v - row[_LAST_VALUE]
            if increase < 0.0:  # a reset: count from zero
                increase = v
            out[i] = increase / (ts[i] - row[_LAST_TS])
        else:
            out[i] = np.nan  # first sample, or not later than the previous one
        if not (row[_SEEN] > 0.0 and ts[i] <= row[_LAST_TS]):
            row[_LAST_VALUE] = v
            row[_LAST_TS] = ts[i]
            row[_SEEN] = 1.0


class CounterRate:
    """Per-series state of the last sample; `apply` turns a batch of counter values into per-second rates."""

    _STATE_VERSION = 1

    def __init__(self) -> None:
        self._state = np.zeros((0, 3))

    def apply(self, batch: MetricBatch) -> MetricBatch:
        n = len(batch)
        if n == 0:
            return batch
        top = int(batch.series_id.max()) + 1
        if top > len(self._state):
            grown = np.zeros((max(top, 2 * len(self._state), 64), 3))
            grown[: len(self._state)] = self._state
            self._state = grown
        rates = np.empty(n)
        _rate_kernel(batch.series_id, batch.ts, batch.value, self._state, rates)
        return MetricBatch(batch.series_id, batch.ts, rates)

    def state_dict(self) -> dict[str, Any]:
        return {"version": self._STATE_VERSION, "state": self._state.copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("version") != self._STATE_VERSION:
            raise ValueError(f"unsupported counter-rate state version {state.get('version')!r}")
        self._state = np.array(state["state"], dtype=np.float64)
