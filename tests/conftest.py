"""Shared fixtures: a store on SQLite *and* on the PostgreSQL server, fresh per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import text

from aiops.store import StoreEngine
from aiops.store.schema import metadata

PG_URL = os.environ.get("AIOPS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A database of our own on the PostgreSQL server, migrated once, dropped at the end."""
    name = f"aiops_test_{uuid.uuid4().hex[:12]}"
    admin_dsn = PG_URL.replace("postgresql+psycopg://", "postgresql://")
    try:
        admin = psycopg.connect(admin_dsn, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {PG_URL} (run scripts/ensure-services.sh): {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = admin_dsn.rpartition("/")
    url = f"{base}/{name}"
    store = StoreEngine(url)
    store.migrate()
    store.close()
    yield url
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    """A URL of an empty, migrated store: an SQLite file, or the test database on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'aiops.db'}"
    url = request.getfixturevalue("pg_database")
    store = StoreEngine(url)
    with store.begin() as conn:
        tables = ", ".join(t.name for t in metadata.sorted_tables)
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    store.close()
    return url


@pytest.fixture
def store(store_url) -> Iterator[StoreEngine]:
    engine = StoreEngine(store_url)
    engine.migrate()
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory) -> Iterator[str]:
    """`127.0.0.1:PORT` of a Tansu broker (Kafka wire protocol) started once for the session.

    Only Kafka tests ask for it, so the rest of the suite never starts a broker. Tests share it and
    use topic and group names of their own (see tests/kafka_broker.py).
    """
    from kafka_broker import BrokerNotAvailable, tansu_broker

    try:
        broker = tansu_broker(tmp_path_factory.mktemp("tansu"))
        bootstrap = broker.__enter__()
    except BrokerNotAvailable as exc:
        pytest.fail(str(exc))
    try:
        yield bootstrap
    finally:
        broker.__exit__(None, None, None)
