"""Alembic environment: always handed a live connection by ``trustplane.core.migrate``."""

from alembic import context

import trustplane.core.models_all  # noqa: F401  (fills Base.metadata)
from trustplane.core.db import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("Run migrations through `trustplane migrate`, which supplies the connection.")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
