"""Change events: recorded with validation, listed with filters, on SQLite and PostgreSQL."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from aiops.api import create_app
from aiops.config_loader import load_settings
from aiops.service import Service


@pytest.fixture
def client(store_url, tmp_path):
    service = Service(load_settings(None, environ={"AIOPS_DATA_DIR": str(tmp_path), "AIOPS_STORE__URL": store_url}))
    with TestClient(create_app(service)) as c:
        yield c


def test_post_one_or_many_and_list_with_filters(client):
    now = time.time()
    one = client.post("/api/v1/events", json={"kind": "deploy", "title": "checkout v2.3.1", "source": "argo",
                                              "ts": now - 600, "labels": {"service": "checkout"},
                                              "detail": {"version": "2.3.1"}})
    assert one.status_code == 201 and len(one.json()["ids"]) == 1
    many = client.post("/api/v1/events", json={"events": [
        {"kind": "config", "title": "raise pool size", "labels": {"service": "payments"}},
        {"kind": "ticket", "title": "CHG0012345", "labels": {"service": "checkout", "cluster": "eu-1"}},
    ]})
    assert many.status_code == 201 and len(many.json()["ids"]) == 2

    everything = client.get("/api/v1/events").json()["items"]
    assert [e["kind"] for e in everything] == ["ticket", "config", "deploy"]
    assert everything[2]["detail"] == {"version": "2.3.1"} and everything[2]["source"] == "argo"
    assert everything[1]["source"] == "api" and abs(everything[1]["ts"] - now) < 60  # defaults
    checkout = client.get("/api/v1/events", params={"label": "service=checkout"}).json()["items"]
    assert [e["title"] for e in checkout] == ["CHG0012345", "checkout v2.3.1"]
    deploys = client.get("/api/v1/events", params={"kind": "deploy"}).json()["items"]
    assert [e["title"] for e in deploys] == ["checkout v2.3.1"]
    recent = client.get("/api/v1/events", params={"start": now - 60}).json()["items"]
    assert {e["kind"] for e in recent} == {"config", "ticket"}
    page = client.get("/api/v1/events", params={"limit": 2}).json()
    rest = client.get("/api/v1/events", params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert len(page["items"]) == 2 and len(rest["items"]) == 1 and rest["next_cursor"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "party", "title": "x"}, "body.EventCreate.kind"),
        ({"kind": "deploy"}, "body.EventCreate.title"),
        ({"kind": "deploy", "title": "x", "ts": -1}, "body.EventCreate.ts"),
        ({"kind": "deploy", "title": "x", "colour": "red"}, "body.EventCreate.colour"),
        ({"events": []}, "body.EventBatch.events"),
    ],
)
def test_bad_events_get_422_naming_the_field(client, body, field):
    response = client.post("/api/v1/events", json=body)
    assert response.status_code == 422
    assert any(e["field"] == field for e in response.json()["errors"]), response.json()


def test_malformed_json_is_400_and_nothing_is_recorded(client):
    response = client.post("/api/v1/events", content=b"{nope", headers={"content-type": "application/json"})
    assert response.status_code == 400 and response.json()["detail"].startswith("malformed JSON")
    assert client.get("/api/v1/events").json()["items"] == []
