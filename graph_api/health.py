"""Liveness and readiness probes for orchestrators and load balancers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from sqlalchemy import text

from graph_api.context import get_runtime
from graph_api.runtime import Runtime
from jobs.errors import EngineError

router = APIRouter(tags=["health"])

STORAGE_TIMEOUT_S = 5.0
STALE_AFTER_BEATS = 3
"""A bridge heartbeat older than this many `heartbeat_interval_s` no longer counts."""


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """200 while the process serves requests at all."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "A dependency is down."}})
async def readyz(runtime: Runtime = Depends(get_runtime)) -> JSONResponse:  # noqa: B008
    """200 only if the database answers, RabbitMQ is connected, the blob store answers (its
    check names it) and Ray is reachable (some
    bridge's recent heartbeat reports a live actor); the body names the check that failed
    and lists the bridges seen."""
    checks: dict[str, str] = {}
    try:
        async with runtime.db.transaction() as session:
            await session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"failed: {type(exc).__name__}"
    checks["broker"] = "ok" if runtime.broker_connected else "failed: not connected"
    checks["storage"] = await _storage_check(runtime)
    checks["ray"], bridges = _ray_check(runtime)
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks, "bridges": bridges},
        status_code=200 if ready else 503,
    )


async def _storage_check(runtime: Runtime) -> str:
    storage = runtime.storage
    try:
        await runtime.check_storage(STORAGE_TIMEOUT_S)
    except TimeoutError:
        return f"failed: {storage.location} did not answer within {STORAGE_TIMEOUT_S:g} s"
    except EngineError as exc:
        return f"failed: {exc.message}"
    except Exception as exc:
        return f"failed: {storage.location}: {type(exc).__name__}"
    return "ok"


def _ray_check(runtime: Runtime) -> tuple[str, list[dict[str, Any]]]:
    """The API never talks to Ray: it trusts the bridges' heartbeats (`bridge.heartbeat`)."""
    limit_s = STALE_AFTER_BEATS * runtime.settings.heartbeat_interval_s
    now = datetime.now(UTC)
    bridges: list[dict[str, Any]] = []
    fresh_actors: list[int] = []
    for beat in runtime.events.bridges():
        age_s = (now - beat.at).total_seconds()
        bridges.append(
            {
                "id": beat.bridge_id,
                "hostname": beat.hostname,
                "ray_address": beat.ray_address,
                "actors": beat.actors_alive,
                "capacity": beat.capacity,
                "age_s": round(age_s, 1),
            }
        )
        if age_s <= limit_s:
            fresh_actors.append(beat.actors_alive)
    if any(fresh_actors):
        return "ok", bridges
    if fresh_actors:
        return "failed: no bridge reports a live actor", bridges
    if bridges:
        return f"failed: no bridge heartbeat in the last {limit_s:g} s", bridges
    return "failed: no bridge heartbeat yet", bridges
