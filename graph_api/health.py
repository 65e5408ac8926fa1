"""Liveness and readiness probes for orchestrators and load balancers."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from sqlalchemy import text

from graph_api.context import get_runtime
from graph_api.runtime import Runtime

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """200 while the process serves requests at all."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "A dependency is down."}})
async def readyz(runtime: Runtime = Depends(get_runtime)) -> JSONResponse:  # noqa: B008
    """200 only if the database answers and RabbitMQ is connected; the body names the check
    that failed."""
    checks: dict[str, str] = {}
    try:
        async with runtime.db.transaction() as session:
            await session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"failed: {type(exc).__name__}"
    checks["broker"] = "ok" if runtime.broker_connected else "failed: not connected"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status_code=200 if ready else 503,
    )
