"""What notifications say, from alert rows and incident stories alone (no store, no network)."""

from __future__ import annotations

from aiops.explain import group_payload, incident_payload, render

SERIES_ALERT = {
    "id": 7, "state": "firing", "severity": "warning", "kind": "anomaly", "first_seen": 1_800_000_000.0,
    "last_seen": 1_800_000_060.0, "count": 3, "flapping": True, "summary": "…",
    "labels": {"__name__": "http_error_ratio", "service": "search", "host": "search-2"},
    "details": {"value": 0.2, "expected": 0.01, "lower": 0.0, "upper": 0.02, "score": 0.7,
                "explanation": {"detectors": {"range": 0.9, "level": 0.4}, "runbook_url": "https://runbooks/errors"}},
}
ENTITY_ALERT = {
    "id": 8, "state": "firing", "severity": "critical", "kind": "anomaly", "first_seen": 1_800_000_030.0,
    "last_seen": 1_800_000_030.0, "count": 1, "summary": "{host=\"db-1\"} is unlike its peers",
    "labels": {"__name__": "entity:hosts", "host": "db-1", "service": "db"},
    "details": {"value": None, "score": 0.8, "explanation": {
        "detectors": {"entity_iforest": 0.8},
        "entity": {"rule": "hosts", "labels": {"host": "db-1"}, "attributions": {"cpu": 0.7, "memory": 0.2, "disk": 0.1}}}},
}
STORY = {
    "id": 3, "state": "open", "severity": "critical", "title": "search errors", "opened_at": 1_800_000_010.0,
    "services": ["db", "search"], "alert_count": 2, "alerts": [SERIES_ALERT, ENTITY_ALERT],
    "origins": [{"service": "db", "rank": 1, "reasons": ["search depends on it"]},
                {"service": "search", "rank": 2, "reasons": ["started 30 s after the first"]}],
    "likely_causes": [{"id": 1, "kind": "config", "title": "pool size 10 → 2", "source": "argo", "ts": 1_799_999_400.0,
                       "labels": {"service": "db"}, "lead_s": 630.0}],
}


def test_a_group_says_what_where_seen_expected_since_why_origins_causes_runbook_and_link():
    payload = group_payload(receiver="team", route="root/0", group={"cluster": "eu-1"}, reason="first",
                            firing=[SERIES_ALERT, ENTITY_ALERT], resolved=[], stories=[STORY],
                            public_url="https://aiops.example.test/")
    assert payload["severity"] == "critical" and payload["status"] == "firing"
    assert payload["link"] == "https://aiops.example.test/api/v1/incidents/3"
    assert payload["source"] == "cluster=eu-1"
    assert payload["runbooks"] == [{"url": "https://runbooks/errors", "automatic": False, "for": [7]}]
    text = payload["text"].splitlines()
    assert text[0] == "CRITICAL: 2 firing [cluster=eu-1]: entity:hosts, http_error_ratio"
    assert text[1] == ("- http_error_ratio on host=search-2, service=search: seen 0.2, expected 0.01 (normal 0..0.02); "
                       "since 2027-01-15 08:00:00 UTC, 3 anomalies")
    assert text[2] == "  why: range 0.9, level 0.4"  # strongest first
    assert text[4] == "  why: entity_iforest 0.8; driven by cpu 70%, memory 20%, disk 10%"
    assert "  likely origin #1: db (search depends on it)" in text
    assert "  likely cause: config pool size 10 → 2 (argo), 10 min before the alerts it may explain" in text
    assert text[-1] == "runbook: https://runbooks/errors"


def test_resolved_groups_and_incident_news_say_so():
    done = group_payload(receiver="team", route="root", group={}, reason="resolved", firing=[],
                         resolved=[{**SERIES_ALERT, "state": "resolved"}], stories=[], public_url="http://x")
    assert done["status"] == "resolved" and done["link"] is None and done["source"] == "search"
    assert render(done)[0] == "RESOLVED: 1 resolved [all]: http_error_ratio"
    ack = incident_payload(receiver="oncall", story=STORY, reason="acknowledged", public_url="http://x", actor="alice")
    assert ack["status"] == "acknowledged" and ack["kind"] == "incident" and ack["source"] == "db, search"
    assert render(ack)[:2] == ["ACKNOWLEDGED: incident #3: search errors", "acknowledged by alice"]
    page = incident_payload(receiver="oncall", story=STORY, reason="escalation", public_url="http://x", step=1)
    assert page["status"] == "firing" and page["escalation_step"] == 1 and render(page)[0].startswith("CRITICAL: incident #3")


LOG_ALERT = {
    "id": 9, "state": "firing", "severity": "critical", "kind": "anomaly", "first_seen": 1_800_000_000.0,
    "last_seen": 1_800_000_000.0, "count": 1,
    "summary": 'new log template on {service="api"}: "pool exhausted after <*> ms" (first seen after warm-up)',
    "labels": {"__name__": "log_template_count", "template_id": "12", "service": "api"},
    "details": {"value": 1.0, "expected": 0.0, "lower": None, "upper": None, "score": 1.0, "explanation": {
        "detectors": {"log_new_template": 1.0},
        "log": {"template_id": 12, "template": "pool exhausted after <*> ms", "new_template": True,
                "examples": ["pool exhausted after 3000 ms", "pool exhausted after 3100 ms"]}}},
}
ERRORS_ALERT = {
    **SERIES_ALERT, "id": 10, "labels": {"__name__": "log_error_count", "service": "api"},
    "details": {**SERIES_ALERT["details"], "value": 40.0, "explanation": {
        "detectors": {"range": 0.9}, "log": {"templates": ["timeout calling <*>"], "examples": ["timeout calling db-1"]}}},
}


def test_log_alerts_show_their_template_and_example_lines():
    payload = group_payload(receiver="team", route="root", group={}, reason="first", firing=[LOG_ALERT, ERRORS_ALERT],
                            resolved=[], stories=[], public_url="http://x")
    assert payload["alerts"][0]["log"] == {"templates": ["pool exhausted after <*> ms"], "new_template": True,
                                           "examples": ["pool exhausted after 3000 ms", "pool exhausted after 3100 ms"]}
    text = payload["text"].splitlines()
    assert text[1].startswith("- log_template_count on service=api, template_id=12: seen 1, expected 0;")
    assert text[2:6] == ["  why: log_new_template 1", "  new log template: pool exhausted after <*> ms",
                         "  e.g.: pool exhausted after 3000 ms", "  e.g.: pool exhausted after 3100 ms"]
    assert text[6].startswith("- log_error_count on service=api: seen 40")
    assert text[7:] == ["  why: range 0.9", "  log template: timeout calling <*>", "  e.g.: timeout calling db-1"]
