"""Logs → template counts and error counts per source and minute, new templates after warm-up, masked examples."""

from __future__ import annotations

from aiops.logmonitor import LogMonitor, LogRecord, mask_secrets

WEB = {"service": "web", "host": "web-1", "pod": "x"}


def test_counts_per_template_and_source_per_minute_and_errors_with_zeros():
    mon = LogMonitor(interval_s=60, warmup_records=0)
    records = [LogRecord(1_000_020.0 + i, f"GET /item/{i} 200 in {i} ms", WEB) for i in range(10)]
    records += [LogRecord(1_000_030.0, "connection refused to db-1:5432", {"service": "api"}, severity=17)]
    signals = mon.observe(records)
    assert signals.points == []  # the minute [1_000_020, 1_000_080) is still open
    points = mon.flush()
    counts = {(p["name"], p["labels"].get("service")): p["value"] for p in points}
    assert counts[("log_template_count", "web")] == 10.0 and counts[("log_template_count", "api")] == 1.0
    assert counts[("log_error_count", "api")] == 1.0 and counts[("log_error_count", "web")] == 0.0
    web = next(p for p in points if p["name"] == "log_template_count" and p["labels"]["service"] == "web")
    assert web["labels"] == {"template_id": web["labels"]["template_id"], "service": "web", "host": "web-1"}  # pod: not a source
    assert web["ts"] == 1_000_080.0


def test_a_template_first_seen_after_warm_up_is_reported_with_masked_examples():
    mon = LogMonitor(warmup_records=50)
    mon.observe([LogRecord(float(i), f"user {i} logged in", WEB) for i in range(60)])
    signals = mon.observe([LogRecord(100.0, "auth failed: password=hunter2 token=abcd", WEB, severity=17)])
    [new] = signals.new_templates
    assert "auth failed" in new["template"] and new["labels"] == {"service": "web", "host": "web-1"}
    assert new["examples"] == ["auth failed: password=*** token=***"]
    assert mon.observe([LogRecord(101.0, "user 99 logged in", WEB)]).new_templates == []  # known


def test_nothing_is_new_during_warm_up_and_state_round_trips():
    mon = LogMonitor(warmup_records=1000)
    assert mon.observe([LogRecord(1.0, "disk 91% full on volume 3", WEB)]).new_templates == []
    again = LogMonitor(warmup_records=0)
    again.load_state_dict(mon.state_dict())
    assert again.observe([LogRecord(2.0, "disk 95% full on volume 7", WEB)]).new_templates == []  # same template, known


def test_secrets_are_masked():
    assert mask_secrets("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.abc") == "Authorization: ***"
    assert mask_secrets("login api_key=12345 ok") == "login api_key=*** ok"
    assert mask_secrets("key AKIAIOSFODNN7EXAMPLE used") == "key *** used"
    assert mask_secrets("GET /health 200") == "GET /health 200"


def test_error_lines_are_those_of_the_interval_an_error_count_point_is_stamped_with():
    mon = LogMonitor(interval_s=10, warmup_records=0, examples=2)
    mon.observe([LogRecord(1.0, "db timeout after 3000 ms", WEB, severity=17),
                 LogRecord(2.0, "db timeout after 3100 ms", WEB, severity=17),
                 LogRecord(3.0, "db timeout after 3200 ms", WEB, severity=17),  # past `examples`: not kept
                 LogRecord(12.0, "disk quota exceeded token=abc", WEB, severity=21)])
    assert [line for _, line in mon.error_lines(WEB, ts=10.0)] == ["db timeout after 3000 ms", "db timeout after 3100 ms"]
    assert [line for _, line in mon.error_lines(WEB)] == ["disk quota exceeded token=***"]  # the latest interval
    assert mon.error_lines({"service": "elsewhere"}) == []


def test_lines_stamped_ahead_of_the_clock_do_not_close_other_sources_intervals():
    mon = LogMonitor(interval_s=10, warmup_records=0, grace_s=0)
    ahead = mon.observe([LogRecord(1.0, "tick 1", WEB), LogRecord(95.0, "clock skewed 1", {"service": "api"})], now=5.0)
    assert ahead.points == []  # capped at now: nothing closed yet
    later = mon.observe([LogRecord(6.0, "tick 2", WEB), LogRecord(11.0, "tick 3", WEB)], now=12.0)
    assert mon.late == 0  # "tick 2" still found its interval open
    assert [(p["labels"]["service"], p["value"]) for p in later.points if p["name"] == "log_template_count"] == [
        ("web", 2.0)]  # the skewed source's interval stays open until the clock gets there
