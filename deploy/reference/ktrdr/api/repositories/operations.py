"""Operation rows in PostgreSQL, used by the backend and by the workers (who create them)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select, text, update
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from ktrdr.api.models.db import OperationRecord
from ktrdr.api.models.operations import ACTIVE, OperationStatus, utcnow
from ktrdr.config import settings


def make_engine() -> AsyncEngine:
    return create_async_engine(settings.database_url(), echo=settings.db_echo(), pool_pre_ping=True,
                               pool_size=5, max_overflow=5, connect_args={"timeout": 5})


class OperationsRepository:
    def __init__(self, engine: AsyncEngine):
        self.engine = engine
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def schema_revision(self) -> str | None:
        """alembic's recorded revision, or None when the schema was never migrated."""
        try:
            async with self.engine.connect() as conn:
                return (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
        except ProgrammingError as exc:  # undefined table
            if "alembic_version" in str(exc):
                return None
            raise

    async def create(self, operation_id: str, operation_type: str, worker_id: str | None,
                     metadata: dict[str, Any], is_backend_local: bool = False) -> None:
        async with self.sessions.begin() as s:
            s.add(OperationRecord(operation_id=operation_id, operation_type=operation_type,
                                  status=OperationStatus.PENDING.value, worker_id=worker_id,
                                  is_backend_local=is_backend_local, metadata_=metadata, progress_percent=0.0))

    async def get(self, operation_id: str) -> OperationRecord | None:
        async with self.sessions() as s:
            return await s.get(OperationRecord, operation_id)

    async def mark_running(self, operation_id: str, message: str | None = None) -> bool:
        return await self._transition(operation_id, status=OperationStatus.RUNNING.value,
                                      started_at=utcnow(), progress_message=message,
                                      last_heartbeat_at=utcnow())

    async def finish(self, operation_id: str, status: str, result: dict[str, Any] | None = None,
                     error: str | None = None, message: str | None = None) -> bool:
        """Move an active operation to a terminal state. Returns False when it already was
        terminal, so a late writer (e.g. a worker completing after a cancel) changes nothing."""
        values: dict[str, Any] = {"status": status, "completed_at": utcnow(), "error_message": error}
        if result is not None:
            values["result"] = result
        if status == OperationStatus.COMPLETED.value:
            values["progress_percent"] = 100.0
        if message is not None:
            values["progress_message"] = message[:500]
        return await self._transition(operation_id, **values)

    async def _transition(self, operation_id: str, **values: Any) -> bool:
        async with self.sessions.begin() as s:
            res = await s.execute(
                update(OperationRecord)
                .where(OperationRecord.operation_id == operation_id, OperationRecord.status.in_(ACTIVE))
                .values(**values))
            return res.rowcount == 1

    async def list(self, status: str | None = None, operation_type: str | None = None,
                   limit: int = 10, offset: int = 0, active_only: bool = False
                   ) -> tuple[list[OperationRecord], int, int]:
        filters = []
        if status:
            filters.append(OperationRecord.status == status)
        if operation_type:
            filters.append(OperationRecord.operation_type == operation_type)
        if active_only:  # ktrdr counts pending + running only, not resuming
            filters.append(OperationRecord.status.in_(["pending", "running"]))
        async with self.sessions() as s:
            rows = (await s.execute(select(OperationRecord).where(*filters)
                                    .order_by(OperationRecord.created_at.desc())
                                    .limit(limit).offset(offset))).scalars().all()
            total = (await s.execute(select(func.count()).select_from(OperationRecord).where(*filters))).scalar()
            active = (await s.execute(select(func.count()).select_from(OperationRecord)
                                      .where(OperationRecord.status.in_(["pending", "running"])))).scalar()
        return list(rows), int(total or 0), int(active or 0)

    async def fail_orphaned_local(self, reason: str) -> int:
        """Backend-local operations die with the backend process that ran them."""
        async with self.sessions.begin() as s:
            res = await s.execute(update(OperationRecord)
                                  .where(OperationRecord.is_backend_local.is_(True), OperationRecord.status.in_(ACTIVE))
                                  .values(status=OperationStatus.FAILED.value, completed_at=utcnow(),
                                          error_message=reason))
            return res.rowcount

    async def active_remote(self) -> list[OperationRecord]:
        """Worker-run operations that are not finished (what the backend watches)."""
        async with self.sessions() as s:
            rows = await s.execute(select(OperationRecord).where(
                OperationRecord.status.in_(ACTIVE),
                or_(OperationRecord.is_backend_local.is_(False), OperationRecord.is_backend_local.is_(None))))
            return list(rows.scalars().all())
