"""The store: SQLAlchemy over an SQLite file (default) or PostgreSQL, schema by Alembic migrations."""

from aiops.store.engine import StoreEngine, migrate, open_engine
from aiops.store.repository import CursorError, ListQuery, Page, decode_cursor, encode_cursor

__all__ = ["CursorError", "ListQuery", "Page", "StoreEngine", "decode_cursor", "encode_cursor", "migrate", "open_engine"]
