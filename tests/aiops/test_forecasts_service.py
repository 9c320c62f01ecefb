"""Forecasts in the service: history from ingest, a run, the stored forecast, predictive alerts that
open, update and resolve, limits read from another series, and GET /api/v1/forecasts."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient
from helpers import SettableClock

from aiops.api import create_app
from aiops.config_loader import load_settings
from aiops.service import Service

DAY = 86400.0
START = 1_800_000_000.0  # 2027-01-15 08:00 UTC


def _service(tmp_path, store_url: str, clock) -> Service:
    settings = load_settings(None, environ={
        "AIOPS_DATA_DIR": str(tmp_path), "AIOPS_STORE__URL": store_url,
        "AIOPS_FORECASTING__STEP_S": "300", "AIOPS_FORECASTING__HISTORY_DAYS": "6", "AIOPS_FORECASTING__EVERY_S": "86400",
        "AIOPS_FORECASTING__RULES": '[{selector: "{__name__=\\"disk_used_percent\\"}", threshold: 100, method: linear, '
                                    'window_s: 86400, lead_time_s: 28800, horizon_s: 43200},'
                                    ' {selector: "{__name__=\\"memory_used_bytes\\"}", limit_metric: memory_limit_bytes,'
                                    ' method: linear, window_s: 86400, lead_time_s: 28800, horizon_s: 43200}]',
    })
    return Service(settings, clock=clock)


def _points(days: float, fill_per_hour: float) -> list[dict]:
    ts = START + np.arange(0, days * DAY, 300.0)
    rng = np.random.default_rng(1)
    daily = 0.5 * np.sin(2 * np.pi * ts / DAY)  # a little daily rhythm (log rotation, backups)
    rows = []
    for host, slope in (("filling", fill_per_hour), ("steady", 0.0)):
        disk = 40 + slope * (ts - START) / 3600 + daily + rng.normal(0, 0.3, len(ts))
        rows += [{"name": "disk_used_percent", "labels": {"host": host}, "ts": float(t), "value": float(v)}
                 for t, v in zip(ts, disk)]
    used = 4e9 + 5e6 * (ts - START) / 3600  # +5 MB an hour: the 4.777 GB limit is reached 155.4 h after START
    rows += [{"name": "memory_used_bytes", "labels": {"host": "filling"}, "ts": float(t), "value": float(v)}
             for t, v in zip(ts, used)]
    rows += [{"name": "memory_limit_bytes", "labels": {"host": "filling"}, "ts": float(t), "value": 4.777e9} for t in ts]
    return rows


def _predictive(client) -> list[dict]:
    return [a for a in client.get("/api/v1/alerts", params={"state": "firing"}).json()["items"] if a["kind"] == "predictive"]


def _drain(service: Service) -> None:
    while service.pipeline.run_once(timeout=0.0):
        pass


def _run(service: Service, clock) -> None:
    """A forecast run, then a pipeline step that takes its verdicts."""
    service.forecasts.verdicts.put(service.forecasts.run_once())
    clock.now += 2
    service.pipeline.run_once(timeout=0.0)


def test_a_filling_disk_alerts_before_it_is_full_and_a_steady_one_never(tmp_path, store_url):
    clock = SettableClock(START + 5 * DAY)
    service = _service(tmp_path, store_url, clock)
    with TestClient(create_app(service)) as client:
        service.pipeline.stop(drain=False)  # the test steps the pipeline and the forecast runs itself
        # 5 days of history; the filling disk gains 0.4 points an hour: 100 % at 40 + 0.4 h → 150 h after START
        for i in range(0, len(points := _points(5, 0.4)), 5000):
            assert client.post("/api/v1/metrics", json=points[i:i + 5000]).status_code == 202
        _drain(service)
        _run(service, clock)
        assert _predictive(client) == []  # 30 h away: beyond the 8 h lead time (and the 12 h horizon)

        # at 6 days (144 h) the disk's trend is at 97.6: it crosses 100 six hours later
        clock.now = START + 6 * DAY  # (the ingest refuses points from the future)
        late = [p for p in _points(6, 0.4) if p["ts"] >= START + 5 * DAY]
        for i in range(0, len(late), 5000):
            client.post("/api/v1/metrics", json=late[i:i + 5000])
        _drain(service)
        _run(service, clock)
        predictive = _predictive(client)
        assert [(a["labels"]["__name__"], a["labels"]["host"]) for a in predictive] == [("disk_used_percent", "filling")]
        alert = predictive[0]
        forecast = alert["details"]["explanation"]["forecast"]
        truth = START + (100 - 40) / 0.4 * 3600  # when the trend reaches 100
        assert abs(forecast["likely"] - truth) < 1.5 * 3600, (forecast["likely"] - truth) / 3600
        assert forecast["earliest"] <= forecast["likely"] and "reaches 100 in ~" in alert["summary"]
        assert "between" in alert["summary"] and alert["details"]["detector"] == "forecast"

        stored = client.get("/api/v1/forecasts", params={"name": "disk_used_percent", "label": "host=filling"}).json()
        [row] = stored["items"]
        assert row["status"] == "ok" and row["model"] == "linear" and len(row["yhat"]) == 144 and row["threshold"] == 100
        assert row["likely"] == pytest.approx(forecast["likely"])
        steady = client.get("/api/v1/forecasts", params={"label": "host=steady"}).json()["items"][0]
        assert steady["likely"] is None and steady["status"] == "ok" and steady["earliest"] is None

        memory = client.get("/api/v1/forecasts", params={"name": "memory_used_bytes"}).json()["items"][0]
        assert memory["threshold"] == 4.777e9  # the limit series' latest value
        assert memory["likely"] - clock.now == pytest.approx(11.4 * 3600, abs=1.5 * 3600)  # 155.4 h − 144 h: not within 8 h

        # the disk is cleaned up: the forecast restarts after the reset and the alert resolves
        # (the memory, 11.4 h from its limit at 6 days, is within the 8 h lead time by 6.2 days)
        cleaned = [{"name": "disk_used_percent", "labels": {"host": "filling"}, "ts": START + 6 * DAY + 300 * k,
                    "value": 30.0 + 0.01 * k} for k in range(1, 48)]
        clock.now = START + 6.2 * DAY
        client.post("/api/v1/metrics", json=cleaned)
        _drain(service)
        _run(service, clock)
        assert [a for a in _predictive(client) if a["labels"]["__name__"] == "disk_used_percent"] == []


def test_a_rule_may_name_a_library_model_fitted_per_series():
    from aiops.forecasts import _library_batch
    from aiops.settings import ForecastRule

    t = np.arange(0, 10 * DAY, 3600.0)
    X = np.vstack([50 + 0.5 * t / 3600 + 5 * np.sin(2 * np.pi * t / DAY), np.r_[np.full(len(t) - 3, np.nan), 1.0, 2, 3]])
    rule = ForecastRule(selector="{}", threshold=300, method="holt_winters")
    batch = _library_batch(X, 24, 3600.0, float(t[-1]), 0.8, rule)
    assert batch.model == ["holt_winters", "none"] and batch.status == ["ok", "too_short"]
    assert batch.ts[0] == t[-1] + 3600 and abs(batch.yhat[0, 23] - (50 + 0.5 * (t[-1] + 24 * 3600) / 3600)) < 6
    assert np.all(batch.lower[0] <= batch.yhat[0]) and np.all(batch.yhat[0] <= batch.upper[0])
