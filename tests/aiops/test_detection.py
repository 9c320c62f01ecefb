"""Routing series to detectors by selector, per-rule thresholds, and live reconfiguration."""

from __future__ import annotations

import numpy as np
import pytest

from aiops.config_loader import ConfigError, load_settings
from aiops.detection import DetectionRouter
from aiops.settings import AlertingSettings, DetectionSettings
from detectors import MetricBatch
from ingest import SeriesRegistry, series_key


def _settings(rules: list[dict], default: dict | None = None) -> DetectionSettings:
    """Rules over an EWMA default: its short warm-up keeps these streams short."""
    return DetectionSettings.model_validate({"rules": rules, "default": default or {"detector": "ewma_zscore"}})


@pytest.fixture
def series() -> SeriesRegistry:
    reg = SeriesRegistry()
    for name, labels in [
        ("http_latency_seconds", {"service": "api"}),
        ("http_latency_seconds", {"service": "web"}),
        ("cpu", {"service": "api"}),
    ]:
        reg.intern(series_key(name, labels))
    return reg


def _stream(router: DetectionRouter, steps: int, spike_at: int | None = None, seed: int = 0):
    rng = np.random.default_rng(seed)
    results = []
    for t in range(steps):
        values = 10 + rng.normal(0, 1, 3)
        if t == spike_at:
            values[:] = 40
        results.append(router.update(MetricBatch.from_arrays([0, 1, 2], [float(t)] * 3, values)))
    return results


def test_first_matching_rule_picks_the_detector_and_its_thresholds(series):
    rules = [
        {"selector": '{__name__=~"http_.*", service="api"}', "detector": "robust_mad", "params": {"window": 16}},
        {"selector": "http_latency_seconds", "detector": "ewma_zscore", "warning_score": 0.1, "critical_score": 0.2},
    ]
    router = DetectionRouter(_settings(rules), AlertingSettings(), series)
    last = _stream(router, 100, spike_at=99)[-1]
    assert last.detector_names == {0: "robust_mad", 1: "ewma_zscore", 2: "ewma_zscore"}
    assert last.explanations[0]["rule"] == rules[0]["selector"] and last.explanations[2]["rule"] == "default"
    assert last.explanations[1]["thresholds"] == {"warning": 0.1, "critical": 0.2}
    assert set(last.severity.tolist()) == {2}


def test_per_rule_thresholds_change_what_is_flagged(series):
    loose = [{"selector": '{service="web"}', "detector": "ewma_zscore", "warning_score": 0.02, "critical_score": 0.99}]
    router = DetectionRouter(_settings(loose), AlertingSettings(), series)
    flagged = np.array([r.severity for r in _stream(router, 300)])
    assert flagged[40:, 1].mean() > 0.3  # a z of 0.5 is enough for the web series
    assert flagged[40:, [0, 2]].max() == 0


def test_reconfigure_keeps_state_of_unchanged_detectors_and_resets_rerouted_series(series):
    rules = [{"selector": '{service="web"}', "detector": "robust_mad"}]
    router = DetectionRouter(_settings(rules), AlertingSettings(), series)
    _stream(router, 60)
    # same specs, new thresholds: everything learned is kept, so scores are ready at once
    report = router.reconfigure(_settings([{**rules[0], "warning_score": 0.5}]), AlertingSettings(warning_score=0.55))
    assert (report.kept_detectors, report.new_detectors, report.rerouted_series) == (2, 0, 0)
    assert router.update(MetricBatch.from_arrays([0, 1, 2], [60.0] * 3, [10.0] * 3)).scores.ready.all()
    # the web series moves to a new detector: it alone warms up again
    report = router.reconfigure(_settings([{**rules[0], "detector": "level_shift"}]), AlertingSettings())
    assert (report.kept_detectors, report.new_detectors, report.rerouted_series) == (1, 1, 1)
    out = router.update(MetricBatch.from_arrays([0, 1, 2], [61.0] * 3, [10.0] * 3))
    assert out.scores.ready.tolist() == [True, False, True]


def test_new_series_are_routed_when_first_seen(series):
    router = DetectionRouter(_settings([{"selector": "mem", "detector": "robust_mad"}]), AlertingSettings(), series)
    _stream(router, 5)
    series.intern(series_key("mem", {"host": "a"}))
    out = router.update(MetricBatch.from_arrays([3, 0], [5.0, 5.0], [1.0, 10.0]))
    assert out.scores.ready.tolist() == [False, False]
    assert router._slots[router._rules[router._rule_of[3]].slot].name == "robust_mad"


@pytest.mark.parametrize(
    ("yaml_text", "path", "needle"),
    [
        ("detection:\n  default:\n    detector: magic\n", "detection.default.detector", "available: ensemble, ewma_zscore"),
        ("detection:\n  default:\n    params: {alpah: 1}\n", "detection.default.params", "valid: alpha"),
        ("detection:\n  default:\n    params: {alpha: 2}\n", "detection.default.params", "alpha must be in (0, 1]"),
        ("detection:\n  rules:\n    - selector: '{a=b}'\n", "detection.rules.0.selector", 'expected label="value"'),
        ("detection:\n  rules:\n    - detector: seasonal\n", "detection.rules.0.selector", "Field required"),
    ],
)
def test_detection_config_errors_name_line_and_field(tmp_path, yaml_text, path, needle):
    file = tmp_path / "aiops.yaml"
    file.write_text(yaml_text)
    with pytest.raises(ConfigError) as err:
        load_settings(file, environ={})
    issue = err.value.issues[0]
    assert issue.path == path and needle in issue.message and issue.line is not None


def test_counter_rules_score_the_rate_and_a_reset_is_not_an_anomaly(series):
    rules = [{"selector": "cpu", "detector": "ewma_zscore", "counter": True, "params": {"warmup": 5}}]
    router = DetectionRouter(_settings(rules), AlertingSettings(warning_score=0.4), series)
    total = 0.0
    flagged = []
    for t in range(300):
        step = 50 + (t % 3)  # a counter growing ~50 per 10 s; at t=200 its process restarts
        total = step if t == 200 else total + step
        out = router.update(MetricBatch.from_arrays([2], [10.0 * t], [total]))
        flagged.append(int(out.severity[0]))
    assert sum(flagged) == 0  # steady growth and the reset raise nothing
    total += 5000  # a burst: 5000 in one step
    out = router.update(MetricBatch.from_arrays([2], [3000.0], [total]))
    assert out.severity[0] > 0 and out.values[0] == pytest.approx(500.0 + 0.5, abs=1.0)
    assert "counter" in out.explanations[0]["scored"]
