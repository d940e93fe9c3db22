"""The ktrdr backend: ``python -m uvicorn ktrdr.api.main:app --host 0.0.0.0 --port 8000``.

Torch-free by design: nothing imported from here pulls in torch or numpy (the backend image has
neither); tests/test_backend_import.py holds that line.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from ktrdr import __version__
from ktrdr.api.endpoints import backtests, dummy, health, operations, strategies, trainings, workers
from ktrdr.api.repositories.operations import OperationsRepository, make_engine
from ktrdr.api.services.operations_service import OperationsService
from ktrdr.api.services.worker_registry import WorkerRegistry
from ktrdr.config import settings
from ktrdr.errors import KtrdrError

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
logger = logging.getLogger("ktrdr.api")

settings.validate_all("backend")  # like ktrdr: bad settings stop the backend at import


@asynccontextmanager
async def lifespan(app: FastAPI):
    engine = make_engine()
    client = httpx.AsyncClient()
    registry = WorkerRegistry()
    ops = OperationsService(OperationsRepository(engine), registry, client)
    app.state.registry, app.state.operations = registry, ops
    db = await ops.database_status()
    if not db["up_to_date"]:
        logger.warning("Database %s is not at schema head (%s); operation endpoints answer 503 until "
                       "`python -m alembic upgrade head` runs", db["database"], db["error"] or db["revision"])
    else:
        await ops.repo.fail_orphaned_local("Backend restarted while this backend-local operation ran")
    monitor = asyncio.create_task(ops.monitor_forever())
    try:
        yield
    finally:
        registry.shutting_down = True
        monitor.cancel()
        # Tell workers now, so they re-register as soon as a backend is back (ktrdr does the same).
        await asyncio.gather(*(client.post(f"{w.endpoint_url}/backend-shutdown", timeout=2.0)
                               for w in registry.list()), return_exceptions=True)
        await client.aclose()
        await engine.dispose()


app = FastAPI(title="KTRDR API (reference)", version=__version__, lifespan=lifespan,
              docs_url=f"{settings.API_PREFIX}/docs", redoc_url=f"{settings.API_PREFIX}/redoc",
              openapi_url=f"{settings.API_PREFIX}/openapi.json")
app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["*"], allow_headers=["*"])
for module in (health, workers, operations, trainings, backtests, strategies, dummy):
    app.include_router(module.router, prefix=settings.API_PREFIX)


def _error(status: int, code: str, message: str, details) -> JSONResponse:
    return JSONResponse(status_code=status,
                        content={"success": False, "error": {"code": code, "message": message, "details": details}})


@app.exception_handler(RequestValidationError)
async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    details = [{"field": ".".join(str(p) for p in e.get("loc", ()) if p != "body"), "message": e.get("msg"),
                "type": e.get("type")} for e in exc.errors()]
    return _error(422, "VALIDATION_ERROR", "Request validation failed", details)


@app.exception_handler(KtrdrError)
async def ktrdr_error(request: Request, exc: KtrdrError) -> JSONResponse:
    return _error(exc.status_code, exc.error_code, str(exc), exc.details)


@app.exception_handler(Exception)
async def unhandled_error(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("Unhandled error on %s %s", request.method, request.url.path)
    return _error(500, "INTERNAL_SERVER_ERROR", f"{type(exc).__name__}: {exc}", {})


@app.get("/")
async def root() -> dict:
    return {"message": f"KTRDR reference API {__version__}; docs at {settings.API_PREFIX}/docs"}
