"""Alembic environment: runs the migrations on the connection ``app.migrate`` hands over.

Owns nothing but the glue; the advisory lock and the URL come from ``app.migrate``.
"""

from alembic import context

from app.db import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite cannot ALTER most things in place; batch mode rebuilds tables instead.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
