"""Probes, error masking, OpenAPI and GraphiQL."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from api_client import heartbeat, running
from fastapi import FastAPI
from graphql import GraphQLError

from graph_api.errors import INTERNAL_CODE, INTERNAL_MESSAGE, report
from jobs.errors import JobNotFound
from jobs.settings import Settings

API = tuple[FastAPI, httpx.AsyncClient]


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_when_everything_is_up(api: API, settings: Settings) -> None:
    app, client = api
    await heartbeat(app, settings, actors=2, bridge_id="b1")
    response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ready"
    assert body["checks"] == {"database": "ok", "broker": "ok", "storage": "ok", "ray": "ok"}
    [bridge] = body["bridges"]
    assert bridge["id"] == "b1" and bridge["actors"] == 2 and bridge["capacity"] == 2
    assert 0 <= bridge["age_s"] < 3 * settings.heartbeat_interval_s


async def test_readyz_without_any_bridge_says_ray_failed(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not ready"
    assert body["checks"]["database"] == body["checks"]["broker"] == "ok"
    assert body["checks"]["ray"] == "failed: no bridge heartbeat yet"
    assert body["bridges"] == []


async def test_readyz_wants_a_live_actor(api: API, settings: Settings) -> None:
    app, client = api
    await heartbeat(app, settings, actors=0)
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["ray"] == "failed: no bridge reports a live actor"
    assert [b["actors"] for b in response.json()["bridges"]] == [0]
    # One healthy bridge among several is enough.
    await heartbeat(app, settings, actors=1, bridge_id="other")
    assert (await client.get("/readyz")).status_code == 200


async def test_readyz_ignores_a_stale_heartbeat(api: API, settings: Settings) -> None:
    app, client = api
    old = datetime.now(UTC) - timedelta(seconds=4 * settings.heartbeat_interval_s)
    await heartbeat(app, settings, actors=3, at=old)
    response = await client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["ray"].startswith("failed: no bridge heartbeat in the last")
    [bridge] = body["bridges"]
    assert bridge["actors"] == 3 and bridge["age_s"] >= 4 * settings.heartbeat_interval_s


async def test_readyz_turns_stale_when_heartbeats_stop(settings: Settings) -> None:
    quick = settings.model_copy(update={"heartbeat_interval_s": 0.2})
    async with running(quick) as (app, client):
        await heartbeat(app, quick)
        assert (await client.get("/readyz")).status_code == 200
        await asyncio.sleep(4 * quick.heartbeat_interval_s)
        response = await client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["checks"]["ray"].startswith("failed: no bridge heartbeat")


async def test_openapi_lists_the_file_routes(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert {"/files", "/files/{file_id}", "/healthz", "/readyz"} <= set(paths)


async def test_graphiql_is_served(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert "graphiql" in response.text.lower()


def test_engine_errors_keep_their_code() -> None:
    error = report(GraphQLError("x", original_error=JobNotFound("j1")))
    assert error.message == "no job with id 'j1'"
    assert error.extensions == {"code": "NOT_FOUND"}


def test_other_errors_are_masked_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="graph_api.errors"):
        error = report(GraphQLError("secret path /etc/x", original_error=KeyError("secret")))
    assert error.message == INTERNAL_MESSAGE
    assert error.extensions == {"code": INTERNAL_CODE}
    assert "secret" not in str(error.formatted)
    assert caplog.records and caplog.records[0].exc_info is not None
