"""`aiops forecast`: the interface the forecast-dev benchmark calls; exactly H lines yhat,lower,upper."""

from __future__ import annotations

import subprocess
import sys

import numpy as np


def _write_csv(path, values):
    t0 = np.datetime64("2020-01-01T00:00:00")
    rows = [f"{t0 + np.timedelta64(3600 * i, 's')}Z,{v}" for i, v in enumerate(values)]
    path.write_text("timestamp,value\n" + "\n".join(rows) + "\n")


def _run(*args):
    return subprocess.run([sys.executable, "-m", "aiops", "forecast", *args], capture_output=True, text=True)


def test_prints_exactly_h_lines_of_yhat_lower_upper(tmp_path):
    rng = np.random.default_rng(0)
    t = np.arange(24 * 20)
    path = tmp_path / "s.csv"
    _write_csv(path, 100 + 10 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 1, len(t)))
    out = _run("--input", str(path), "--horizon", "48")
    assert out.returncode == 0, out.stderr
    rows = np.array([[float(v) for v in line.split(",")] for line in out.stdout.splitlines()])
    assert rows.shape == (48, 3)
    assert np.all(rows[:, 1] <= rows[:, 0]) and np.all(rows[:, 0] <= rows[:, 2])
    assert "fit_seconds=" in out.stderr and "model=" in out.stderr
    named = _run("--input", str(path), "--horizon", "5", "--model", "snaive")
    assert named.returncode == 0 and len(named.stdout.splitlines()) == 5


def test_too_short_and_unknown_model_exit_2_with_a_message(tmp_path):
    path = tmp_path / "s.csv"
    _write_csv(path, [1.0, 2.0, 3.0])
    out = _run("--input", str(path), "--horizon", "4")
    assert out.returncode == 2 and "too short: need 8 points, got 3" in out.stderr and out.stdout == ""
    _write_csv(path, np.arange(50.0))
    out = _run("--input", str(path), "--horizon", "4", "--model", "arima")
    assert out.returncode == 2 and "unknown model 'arima'" in out.stderr
