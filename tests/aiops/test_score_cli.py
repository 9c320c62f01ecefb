"""`aiops score`: the interface external benchmarks call; one score per row, causal, deterministic."""

from __future__ import annotations

import subprocess
import sys

import numpy as np


def _write_csv(path, values, start="2024-01-01 00:00:00"):
    t0 = np.datetime64(start)
    lines = ["timestamp,value"] + [
        f"{str(t0 + np.timedelta64(300 * i, 's')).replace('T', ' ')},{v}" for i, v in enumerate(values)
    ]
    path.write_text("\n".join(lines) + "\n")


def _score(path, *extra) -> np.ndarray:
    out = subprocess.run(
        [sys.executable, "-m", "aiops", "score", "--input", str(path), *extra], capture_output=True, text=True, check=True
    )
    return np.array([float(x) for x in out.stdout.split()])


def test_one_score_per_row_in_unit_interval_and_a_spike_stands_out(tmp_path):
    rng = np.random.default_rng(0)
    values = 50 + rng.normal(0, 1, 600)
    values[500] = 90
    path = tmp_path / "series.csv"
    _write_csv(path, values)
    scores = _score(path)
    assert len(scores) == 600 and scores.min() >= 0 and scores.max() <= 1
    assert scores[500] == scores.max() and scores[500] > 0.8
    assert scores[:150].max() == 0  # warm-up


def test_causal_a_cut_file_gives_the_same_scores_for_the_rows_kept(tmp_path):
    rng = np.random.default_rng(1)
    values = np.cumsum(rng.normal(0, 1, 800))
    full, cut = tmp_path / "full.csv", tmp_path / "cut.csv"
    _write_csv(full, values)
    _write_csv(cut, values[:533])
    np.testing.assert_array_equal(_score(full)[:533], _score(cut))


def test_named_detector_and_bad_input(tmp_path):
    path = tmp_path / "s.csv"
    _write_csv(path, np.arange(100.0))
    assert len(_score(path, "--detector", "ewma_zscore")) == 100
    bad = subprocess.run([sys.executable, "-m", "aiops", "score", "--input", str(path), "--detector", "nope"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "available: ensemble" in bad.stderr
    (tmp_path / "h.csv").write_text("time,val\n1,2\n")
    bad = subprocess.run([sys.executable, "-m", "aiops", "score", "--input", str(tmp_path / "h.csv")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "h.csv:1: expected the header timestamp,value" in bad.stderr
