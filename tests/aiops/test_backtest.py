"""`aiops backtest`: alerts a config would raise on recorded data, and accuracy where labels exist."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from aiops.backtest import nab_style_score, read_points, run_backtest
from aiops.config_loader import load_settings
from aiops.replay import DataFileError


def _labelled_csv(path, n=1200, spikes=((700, 25), (1000, 40))):
    rng = np.random.default_rng(2)
    values = 20 + rng.normal(0, 1, n)
    labels = np.zeros(n, dtype=int)
    for s, height in spikes:  # each a new record: the ensemble does not re-alarm on a repeated spike
        values[s] += height
        labels[s - 5 : s + 6] = 1
    start = np.datetime64("2024-01-01T00:00:00")
    rows = [f"{str(start + np.timedelta64(300 * i, 's')).replace('T', ' ')},{v},{l}" for i, (v, l) in enumerate(zip(values, labels))]
    path.write_text("timestamp,value,label\n" + "\n".join(rows) + "\n")


def test_labelled_csv_reports_alerts_recall_precision_and_nab_score(tmp_path):
    data = tmp_path / "cpu.csv"
    _labelled_csv(data)
    report = run_backtest(load_settings(None, environ={}), read_points(data))
    assert report.points == 1200 and report.series == 1
    assert report.windows == 2 and report.windows_detected == 2 and report.recall == 1.0
    assert report.precision == 1.0 and len(report.alerts) == 2
    assert report.nab_score > 80
    assert report.alerts[0].series == "cpu{}" and report.alerts[0].severity == "critical"


def test_json_lines_of_several_series_and_a_stricter_config_raises_less(tmp_path):
    rng = np.random.default_rng(3)
    lines = []
    for i in range(1500):
        for host in ("a", "b"):
            value = 10 + rng.normal(0, 1) + (30 if host == "b" and i == 1200 else 0)
            lines.append(json.dumps({"name": "lat", "labels": {"host": host}, "ts": 1.7e9 + 300 * i, "value": value}))
    data = tmp_path / "points.jsonl"
    data.write_text("\n".join(lines) + "\n")
    loose = tmp_path / "loose.yaml"
    loose.write_text("alerting:\n  warning_score: 0.1\n  critical_score: 0.9\n")
    strict = run_backtest(load_settings(None, environ={}), read_points(data))
    lenient = run_backtest(load_settings(loose, environ={}), read_points(data))
    assert strict.series == 2 and strict.windows is None
    assert 'lat{host="b"}' in [a.series for a in strict.alerts]
    assert len(lenient.alerts) > len(strict.alerts)


def test_cli_prints_the_report_and_rejects_bad_data(tmp_path):
    data = tmp_path / "cpu.csv"
    _labelled_csv(data)
    out = subprocess.run([sys.executable, "-m", "aiops", "backtest", "--data", str(data)], capture_output=True, text=True)
    assert out.returncode == 0 and "2/2 detected" in out.stdout and "NAB-style score" in out.stdout
    as_json = subprocess.run([sys.executable, "-m", "aiops", "backtest", "--data", str(data), "--json"],
                             capture_output=True, text=True, check=True)
    assert json.loads(as_json.stdout)["windows_detected"] == 2
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"name": "x", "ts": 1, "value": 2}\n{"name": "x"}\n')
    with pytest.raises(DataFileError, match="bad.jsonl:2"):
        read_points(bad)
    out = subprocess.run([sys.executable, "-m", "aiops", "backtest", "--data", str(bad)], capture_output=True, text=True)
    assert out.returncode == 2 and "bad.jsonl:2" in out.stderr


def test_nab_style_score_rewards_early_detection_and_charges_false_alarms():
    labels = np.zeros(100, dtype=int)
    labels[40:50] = 1
    at_start = np.zeros(100, dtype=bool)
    at_start[40] = True
    late = np.zeros(100, dtype=bool)
    late[49] = True
    noisy = at_start.copy()
    noisy[10] = True
    raw_start, null, perfect = nab_style_score(at_start, labels)
    assert (null, perfect) == (-1.0, 1.0) and raw_start == pytest.approx(1.0)
    assert 0 < nab_style_score(late, labels)[0] < raw_start
    assert nab_style_score(noisy, labels)[0] == pytest.approx(1.0 - 0.11)
    assert nab_style_score(np.zeros(100, dtype=bool), labels)[0] == -1.0
