"""Alembic environment: async engine, URL from KTRDR_DB_* (falling back to DB_*).

All pending revisions run in ONE transaction (alembic's default, transaction_per_migration
off), so a failing revision rolls back every revision of that upgrade and the recorded
revision stays where it was.
"""

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy import pool
from sqlalchemy.ext.asyncio import create_async_engine

from ktrdr.api.models.db import Base
from ktrdr.config import settings

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name)

target_metadata = Base.metadata


def run_migrations_offline() -> None:
    context.configure(url=settings.database_url(), target_metadata=target_metadata,
                      literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


async def run_migrations_online() -> None:
    engine = create_async_engine(settings.database_url(), poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
    except OSError as exc:
        raise SystemExit(f"alembic: cannot reach PostgreSQL at {settings.database_display()}: {exc}. "
                         "Check KTRDR_DB_HOST/KTRDR_DB_PORT (or DB_*) and that the server is up.") from None
    finally:
        await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
