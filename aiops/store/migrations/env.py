"""Alembic environment: runs migrations on the connection `aiops.store.Store.migrate` hands over."""

from alembic import context

from aiops.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
