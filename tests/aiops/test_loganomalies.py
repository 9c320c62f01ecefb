"""The service's log signals: new templates as anomaly records, log context on anomalies of log series, bounds."""

from __future__ import annotations

from aiops.alerts import AnomalyRecord
from aiops.loganomalies import DETECTOR, LogAnomalies
from aiops.logmonitor import LogMonitor
from aiops.settings import LogSettings
from detectors.logtemplates import TemplateMiner
from detectors.types import LogRecord
from ingest.registry import SeriesRegistry, series_key

API = {"service": "api", "host": "api-1"}


def _logs(**settings) -> LogAnomalies:
    return LogAnomalies(LogSettings(**{"warmup_records": 10, "interval_s": 10, "grace_s": 0, **settings}), SeriesRegistry())


def _record(key, value: float, explanation: dict | None = None) -> AnomalyRecord:
    return AnomalyRecord(series_id=0, key=key, ts=100.0, value=value, expected=1.0, lower=0.0, upper=2.0, score=0.9,
                         severity="warning", detector="ensemble", explanation=explanation or {"detectors": {"range": 0.9}})


def test_a_new_template_becomes_one_anomaly_record_on_its_count_series():
    logs = _logs()
    logs.observe([LogRecord(float(i), f"request {i} served", API) for i in range(10)])
    assert logs.take() == []  # warm-up: nothing is new
    logs.observe([LogRecord(20.0, "pool exhausted token=abc123 after 3000 ms", API, severity=17),
                  LogRecord(21.0, "pool exhausted token=def456 after 3100 ms", API, severity=17)])
    [record] = logs.take()
    assert record.detector == DETECTOR and record.severity == "critical" and record.score == 1.0
    name, labels = record.key
    assert name == "log_template_count" and dict(labels) == {"template_id": dict(labels)["template_id"], **API}
    assert logs.registry.get(record.key) == record.series_id
    log = record.explanation["log"]
    assert log["new_template"] is True and log["template"] == "pool exhausted token=<*> after <*> ms"
    assert log["examples"] == ["pool exhausted token=*** after 3000 ms", "pool exhausted token=*** after 3100 ms"]
    assert logs.take() == []  # taken once


def test_anomalies_on_log_series_get_the_template_or_the_error_lines_and_others_are_untouched():
    logs = _logs(warmup_records=0)
    logs.observe([LogRecord(1.0, "GET /a took 5 ms", API), LogRecord(2.0, "GET /a took 7 ms", API),
                  LogRecord(3.0, "upstream db-1 refused connection", API, severity=17)])
    tid = logs.monitor.miner.add("GET /a took 9 ms")[0]
    count = _record(series_key("log_template_count", {"template_id": str(tid), **API}), 40.0)
    errors = _record(series_key("log_error_count", API), 12.0)
    cpu = _record(series_key("cpu", API), 99.0)
    enriched = logs.enrich([count, errors, cpu])
    assert enriched[0].explanation == {"detectors": {"range": 0.9}, "log": {
        "template_id": tid, "template": "GET /a took <*> ms", "examples": ["GET /a took 5 ms", "GET /a took 7 ms"]}}
    assert enriched[1].explanation["log"] == {"templates": ["upstream <*> refused connection"],
                                              "examples": ["upstream db-1 refused connection"]}
    assert enriched[2] is cpu


def test_points_the_bus_refused_go_out_with_the_next_call():
    logs = _logs(warmup_records=0)
    first = logs.observe([LogRecord(1.0, "a 1", API), LogRecord(25.0, "a 2", API)])
    assert {p["name"] for p in first} == {"log_template_count", "log_error_count"}
    logs.requeue(first)
    again = logs.observe([LogRecord(26.0, "a 3", API)])
    assert again == first


def test_memory_stays_bounded_under_an_endless_stream_of_new_templates():
    monitor = LogMonitor(interval_s=10, warmup_records=0, examples=2, miner=TemplateMiner(max_templates=20),
                         grace_s=0, max_sources=5)
    for k in range(300):  # each message its own template (different literal words), each from a new source
        word = "".join(chr(97 + (k // 26**i) % 26) for i in range(3))
        monitor.observe([LogRecord(float(k), f"{word} event happened", {"service": f"s{k}"}, severity=17)])
    assert len(monitor.miner) <= 20
    assert len(monitor._known) <= 2 * 20 + 1 and len(monitor._examples) <= 2 * 20 + 1
    assert len(monitor._error_lines) == 5
    assert len(monitor._counts) <= 1  # only the interval still open


def test_a_record_for_an_interval_already_closed_is_mined_but_not_counted_twice():
    monitor = LogMonitor(interval_s=10, warmup_records=0, grace_s=0)
    points = monitor.observe([LogRecord(1.0, "x 1", API), LogRecord(15.0, "x 2", API)]).points
    assert [p["ts"] for p in points if p["name"] == "log_template_count"] == [10.0]
    late = monitor.observe([LogRecord(2.0, "x 3", API)]).points
    assert late == [] and monitor.late == 1


def test_when_every_source_falls_silent_the_open_intervals_close_on_the_clock():
    logs = _logs(warmup_records=0, interval_s=10, grace_s=5)
    assert logs.observe([LogRecord(101.0, "job 7 done", API)], now=102.0) == []  # [100, 110) is open
    assert logs.tick(now=110.0) == []  # quiet for 8 s: less than interval + grace
    points = logs.tick(now=117.0)
    assert [(p["name"], p["ts"], p["value"]) for p in points] == [("log_template_count", 110.0, 1.0),
                                                                   ("log_error_count", 110.0, 0.0)]
    batch = logs.batch(points, now=117.0)
    assert len(batch) == 2 and {logs.registry.name(int(i)) for i in batch.series_id} == {"log_template_count",
                                                                                          "log_error_count"}
    assert logs.tick(now=200.0) == []  # nothing left open
