"""Notifications end to end: routed alert groups and escalation pages reach their receivers' emulators,
explained; acknowledgement stops escalation and reaches PagerDuty; the outbox retries, orders and
never sends a message twice."""

from __future__ import annotations

import json
import threading
import random
import time

import pytest
import yaml
from emulators.http_receiver import HttpReceiver, Reply
from emulators.pagerduty import PagerDutyEmulator
from emulators.slack import SlackEmulator
from fastapi.testclient import TestClient
from helpers import SettableClock, post_latency_spikes, wait_for

from aiops.api import create_app
from aiops.config_loader import ConfigError, load_settings
from aiops.escalation import Escalations
from aiops.outbox import Outbox
from aiops.receivers import Receivers
from aiops.service import Service
from aiops.settings import AlertingSettings, EscalationPolicy
from aiops.store import StoreEngine
from aiops.store.schema import notifications
from sqlalchemy import select

ROUTING_KEY = "R" * 32
SEAMS = {"sleep": lambda s: None, "rng": random.Random(0)}


def _config(tmp_path, store_url, webhook, slack, pagerduty, pager2) -> str:
    config = {
        "data_dir": str(tmp_path),
        "store": {"url": store_url},
        "server": {"public_url": "https://aiops.example.test"},
        "detection": {"default": {"detector": "ewma_zscore", "runbook_url": "https://wiki.example.test/runbooks/latency"}},
        "alerting": {
            "resolve_after_s": 600,
            "incidents": {"group_by": [], "topology": {"checkout": ["payments"]}},
            "receivers": [
                {"name": "team", "webhook": [{"url": webhook, "secret": "s3cret"}], "slack": [{"webhook_url": slack}]},
                {"name": "pager-1", "pagerduty": [{"routing_key": ROUTING_KEY, "url": pagerduty}]},
                {"name": "pager-2", "webhook": [{"url": pager2}]},
            ],
            "route": {"receiver": "team", "group_by": [], "group_wait_s": 0, "group_interval_s": 1},
            "escalation": [{"name": "shop", "selector": '{service=~"checkout|payments"}',
                            "steps": [{"receiver": "pager-1", "wait_s": 1.0}, {"receiver": "pager-2", "wait_s": 1.0}],
                            "repeat": 5}],
        },
    }
    path = tmp_path / "aiops.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_routed_groups_and_escalation_pages_are_explained_and_acknowledgement_stops_them(store_url, tmp_path):
    with HttpReceiver() as webhook, SlackEmulator() as slack, PagerDutyEmulator() as pd, HttpReceiver() as pager2:
        path = _config(tmp_path, store_url, webhook.url + "/hook", slack.url, pd.url, pager2.url + "/page")
        service = Service(load_settings(path), config_path=path, connector_seams=SEAMS)
        with TestClient(create_app(service)) as client:
            client.post("/api/v1/events", json={"kind": "deploy", "title": "payments v9", "source": "jenkins",
                                                "labels": {"service": "payments"}, "ts": time.time() - 300})
            post_latency_spikes(client, ["payments", "checkout"], time.time() - 720)  # spikes 20 s ago, after the deploy

            # the routed group reaches the team's webhook, explained
            sent = wait_for(lambda: list(webhook.requests), lambda r: r)
            body = json.loads(sent[0].body)
            assert body["kind"] == "alerts" and body["receiver"] == "team" and body["status"] == "firing"
            first = body["alerts"][0]
            assert first["what"] == "latency" and first["seen"] == 2.0 and first["expected"] == pytest.approx(0.2, abs=0.02)
            assert first["lower"] < first["expected"] < first["upper"] and first["since"] > 0
            assert body["runbooks"][0]["url"] == "https://wiki.example.test/runbooks/latency"
            incident = body["incidents"][0]
            assert incident["link"] == f"https://aiops.example.test/api/v1/incidents/{incident['id']}"
            assert incident["likely_causes"][0]["title"] == "payments v9"
            assert sent[0].headers["idempotency-key"] and sent[0].headers["x-aiops-signature"].startswith("sha256=")
            assert "seen 2, expected" in body["text"] and "runbook: https://wiki.example.test/runbooks/latency" in body["text"]

            # Slack says the same in words
            message = wait_for(lambda: list(slack.messages), lambda m: m)[0]
            assert "latency on cluster=eu-1, service=" in message["blocks"][1]["text"]["text"]

            # escalation: step 1 pages PagerDuty at once, step 2 after a second without acknowledgement
            key = f"incident:{incident['id']}"
            wait_for(lambda: dict(pd.alerts), lambda a: a.get(key) == "triggered")
            trigger = next(e for e in pd.events if e["dedup_key"] == key)
            assert trigger["payload"]["severity"] in ("critical", "warning") and trigger["links"][0]["href"] == incident["link"]
            assert "likely origin #1: payments" in trigger["payload"]["custom_details"]["explanation"]
            paged = wait_for(lambda: list(pager2.requests), lambda r: r)
            assert json.loads(paged[0].body)["reason"] == "escalation"

            # acknowledging stops escalation and acknowledges PagerDuty's alert
            ack = client.post(f"/api/v1/incidents/{incident['id']}/acknowledge", json={"by": "alice"}).json()
            assert ack["escalation_next_at"] is None
            assert wait_for(lambda: dict(pd.alerts), lambda a: a.get(key) == "acknowledged")[key] == "acknowledged"
            time.sleep(0.5)  # a page decided just before the acknowledgement may still be committing
            escalated = _timeline(client, incident["id"]).count("escalated")
            time.sleep(2.5)  # more than two steps' worth of time: unacknowledged, it would page again
            assert _timeline(client, incident["id"]).count("escalated") == escalated >= 2

            client.post(f"/api/v1/incidents/{incident['id']}/remediate", json={"by": "alice", "note": "rolling back"})
            client.post(f"/api/v1/incidents/{incident['id']}/resolve", json={"by": "alice"})
            assert wait_for(lambda: dict(pd.alerts), lambda a: a.get(key) == "resolved")[key] == "resolved"
            assert _timeline(client, incident["id"])[-3:] == ["acknowledged", "remediating", "resolved"]

            listed = client.get("/api/v1/notifications", params={"incident_id": incident["id"]}).json()["items"]
            assert {n["state"] for n in listed} == {"sent"}
            assert {(n["receiver"], n["action"]) for n in listed} >= {("pager-1", "trigger"), ("pager-1", "acknowledge"),
                                                                      ("pager-1", "resolve"), ("pager-2", "trigger")}


def _timeline(client, incident_id: int) -> list[str]:
    return [t["kind"] for t in client.get(f"/api/v1/incidents/{incident_id}").json()["timeline"]]


def test_escalation_steps_repeat_then_stop():
    esc = Escalations([EscalationPolicy(name="p", steps=[{"receiver": "a", "wait_s": 60}, {"receiver": "b", "wait_s": 120}],
                                        repeat=1)])
    step = esc.next("p", -1, 0, now=0)
    seen = []
    while step.receiver is not None:
        seen.append((step.receiver, step.next_at))
        step = esc.next("p", step.step, step.round, now=step.next_at)
    assert seen == [("a", 60), ("b", 180), ("a", 240), ("b", 360)]
    assert esc.next("gone", 0, 0, now=0).receiver is None  # a policy removed by a reload stops


def _outbox(store_url, url: str, clock) -> tuple[Outbox, StoreEngine]:
    store = StoreEngine(store_url)
    store.migrate()
    receivers = Receivers(AlertingSettings.model_validate({"receivers": [{"name": "r", "webhook": [{"url": url}]}]}).receivers,
                          **SEAMS)
    return Outbox(store, receivers, clock=clock, rounds=2, round_backoff_s=60), store


def _rows(store):
    with store.begin() as conn:
        return [dict(r._mapping) for r in conn.execute(select(notifications).order_by(notifications.c.id))]


def test_outbox_writes_a_message_once_retries_a_round_later_and_keeps_order_per_subject(store_url):
    clock = SettableClock()
    with HttpReceiver() as receiver:
        outbox, store = _outbox(store_url, receiver.url, clock)
        with store.begin() as conn:
            for _ in range(2):  # the same message twice (e.g. after a restart): one row
                outbox.enqueue(conn, receiver="r", action="trigger", reason="first", subject="group:a",
                               payload={"n": 1}, key=("first", (1,)), now=clock.now)
            outbox.enqueue(conn, receiver="r", action="resolve", reason="resolved", subject="group:a",
                           payload={"n": 2}, key=("resolved", (1,)), now=clock.now)
        assert len(_rows(store)) == 2
        receiver.replies = [Reply(503)] * 4  # every attempt of the first round fails
        assert outbox.deliver_due() == 1  # the resolve waits behind its trigger
        first, second = _rows(store)
        assert (first["state"], first["attempts"], second["state"]) == ("pending", 1, "pending")
        assert "503" in first["last_error"] and first["next_attempt_at"] == clock.now + 60
        assert outbox.deliver_due() == 0  # not yet due
        clock.now += 60
        assert outbox.deliver_due() == 2
        assert [r["state"] for r in _rows(store)] == ["sent", "sent"]
        bodies = [json.loads(r.body)["n"] for r in receiver.requests if r.body]
        assert bodies[-2:] == [1, 2]
        keys = {r.headers["idempotency-key"] for r in receiver.requests if json.loads(r.body)["n"] == 1}
        assert len(keys) == 1  # every attempt of one message carries one key
        store.close()


def test_outbox_fails_a_refused_message_at_once_and_one_whose_rounds_run_out(store_url):
    clock = SettableClock()
    with HttpReceiver() as receiver:
        outbox, store = _outbox(store_url, receiver.url, clock)
        with store.begin() as conn:
            outbox.enqueue(conn, receiver="r", action="trigger", reason="first", subject="group:a", payload={}, key=(1,),
                           now=clock.now)
            outbox.enqueue(conn, receiver="r", action="trigger", reason="first", subject="group:b", payload={}, key=(2,),
                           now=clock.now)
        receiver.replies = [Reply(400, body=b'{"error": "bad"}')] + [Reply(500)] * 8
        outbox.deliver_due()
        clock.now += 60
        outbox.deliver_due()
        a, b = _rows(store)
        assert (a["state"], a["attempts"]) == ("failed", 1) and "HTTP 400" in a["last_error"]
        assert (b["state"], b["attempts"]) == ("failed", 2) and "HTTP 500" in b["last_error"]
        store.close()


def test_two_senders_on_one_outbox_deliver_each_message_once_and_in_order(store_url):
    clock = SettableClock()
    with HttpReceiver() as receiver:
        (one, store), (two, other) = _outbox(store_url, receiver.url, clock), _outbox(store_url, receiver.url, clock)
        with store.begin() as conn:
            for n in range(6):  # two streams of three messages
                one.enqueue(conn, receiver="r", action="trigger", reason="first", subject=f"group:{n % 2}",
                            payload={"n": n}, key=(n,), now=clock.now)
        receiver.replies = [Reply(200, delay_s=0.05)] * 12
        threads = [threading.Thread(target=sender.deliver_due) for sender in (one, two) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        one.deliver_due(), two.deliver_due()  # what a pass left behind a stream another sender held
        sent = [json.loads(r.body)["n"] for r in receiver.requests]
        assert sorted(sent) == list(range(6))  # each message once, though six passes raced for them
        assert [n for n in sent if n % 2 == 0] == [0, 2, 4] and [n for n in sent if n % 2] == [1, 3, 5]
        assert [r["state"] for r in _rows(store)] == ["sent"] * 6
        store.close()
        other.close()


def test_routes_and_escalations_must_name_configured_receivers(tmp_path):
    path = tmp_path / "aiops.yaml"
    path.write_text("alerting:\n  receivers:\n    - name: team\n      slack: [{webhook_url: 'http://127.0.0.1:1/x'}]\n"
                    "  route:\n    receiver: team\n    routes:\n      - {selector: '{service=\"db\"}', receiver: dba}\n"
                    "  escalation:\n    - name: p\n      steps: [{receiver: nobody}]\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    text = str(err.value)
    assert "route.routes[0]: 'dba'" in text and "escalation[0].steps[0]: 'nobody'" in text and "receivers: team" in text
