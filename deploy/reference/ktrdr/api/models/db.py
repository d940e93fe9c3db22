"""Database tables (created only by the alembic revisions in alembic/versions)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, DateTime, Float, ForeignKey, Integer, String, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# The revision this code needs; tests/test_migrations.py checks it is alembic's head.
# Indexes and DDL live in the revisions only: migrations own the schema.
SCHEMA_HEAD = "a1b2c3d4e5f6"


class Base(DeclarativeBase):
    pass


class OperationRecord(Base):
    __tablename__ = "operations"

    operation_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    operation_type: Mapped[str] = mapped_column(String(50), nullable=False)
    status: Mapped[str] = mapped_column(String(50), nullable=False)
    worker_id: Mapped[str | None] = mapped_column(String(255))
    is_backend_local: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False,
                                                 server_default=func.now())
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    progress_percent: Mapped[float] = mapped_column(Float, nullable=False, server_default=text("0"))
    progress_message: Mapped[str | None] = mapped_column(String(500))
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, nullable=False,
                                                      server_default=text("'{}'::jsonb"))
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    error_message: Mapped[str | None] = mapped_column(Text)
    last_heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reconciliation_status: Mapped[str | None] = mapped_column(String(50))


class CheckpointRecord(Base):
    __tablename__ = "operation_checkpoints"

    operation_id: Mapped[str] = mapped_column(
        String(255), ForeignKey("operations.operation_id", ondelete="CASCADE"), primary_key=True)
    checkpoint_type: Mapped[str] = mapped_column(String(50), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    state: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    artifacts_path: Mapped[str | None] = mapped_column(String(500))
    state_size_bytes: Mapped[int | None] = mapped_column(Integer)
    artifacts_size_bytes: Mapped[int | None] = mapped_column(BigInteger)
