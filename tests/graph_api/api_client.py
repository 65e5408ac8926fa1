"""Helpers to drive the API in tests: in-process app, real server, GraphQL requests."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from cli.stack import free_port
from graph_api.app import create_app
from graph_api.runtime import Runtime
from graph_api.serving import uvicorn_config
from jobs.broker import Broker
from jobs.contract import BridgeHeartbeat
from jobs.settings import Settings

PREFLIGHT = {"Apollo-Require-Preflight": "true"}

UPLOAD = """
mutation Upload($file: Upload!) {
  uploadAudio(file: $file) {
    id filename format subtype sampleRate channels frames durationSeconds sizeBytes
    downloadUrl createdAt
  }
}
"""


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The app inside its lifespan, with a client talking to it in-process."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield app, client


@contextlib.asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[str]:
    """A real uvicorn server on a free port (websocket tests); yields `host:port`."""
    async with serving_app(settings) as (base, _app):
        yield base


@contextlib.asynccontextmanager
async def serving_app(settings: Settings) -> AsyncIterator[tuple[str, FastAPI]]:
    """`serving`, also yielding the app (its runtime is `app.state.runtime`)."""
    port = free_port()
    app = create_app(settings)
    config = uvicorn_config(
        app,
        settings,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield f"127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        await task


async def until(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    """Wait until `predicate()` holds (checked every 20 ms); fail after `timeout` seconds."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


async def gql(
    client: httpx.AsyncClient, query: str, variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    response = await client.post("/graphql", json={"query": query, "variables": variables or {}})
    body: dict[str, Any] = response.json()
    return body


def codes(body: dict[str, Any]) -> list[str]:
    return [e.get("extensions", {}).get("code") for e in body.get("errors") or []]


async def upload(
    client: httpx.AsyncClient, content: bytes, filename: str = "tone.wav"
) -> dict[str, Any]:
    """Send a GraphQL multipart request (jaydenseric/graphql-multipart-request-spec)."""
    response = await client.post(
        "/graphql",
        headers=PREFLIGHT,
        data={
            "operations": json.dumps({"query": UPLOAD, "variables": {"file": None}}),
            "map": json.dumps({"0": ["variables.file"]}),
        },
        files={"0": (filename, content, "audio/wav")},
    )
    body: dict[str, Any] = response.json()
    return body


async def uploaded(client: httpx.AsyncClient, path: Path) -> dict[str, Any]:
    body = await upload(client, path.read_bytes(), path.name)
    assert "errors" not in body, body
    file: dict[str, Any] = body["data"]["uploadAudio"]
    return file


async def make_key(
    settings: Settings, name: str, *, admin: bool = False, owner: str | None = None
) -> str:
    """Create an API key in the settings' database (migrating it first if need be)."""
    from graph_api.auth import create_key
    from jobs.db import Database

    db = Database(settings.sqlalchemy_url)
    try:
        await db.migrate()
        key, _ = await create_key(db, name=name, admin=admin, owner=owner)
    finally:
        await db.close()
    return key


async def revoke_key(settings: Settings, name: str) -> None:
    """Revoke the key called `name` in the settings' database."""
    from jobs.db import Database, writes

    db = Database(settings.sqlalchemy_url)
    try:
        async with db.transaction() as session:
            await writes.revoke_api_key(session, name)
    finally:
        await db.close()


async def publish_heartbeat(
    settings: Settings,
    *,
    actors: int = 1,
    at: datetime | None = None,
    bridge_id: str = "test-bridge",
) -> BridgeHeartbeat:
    """Publish one bridge heartbeat on the settings' events exchange."""
    beat = BridgeHeartbeat(
        bridge_id=bridge_id,
        hostname="test-host",
        ray_address="local",
        actors_alive=actors,
        capacity=max(actors, 1),
        **({"at": at} if at is not None else {}),
    )
    broker = await Broker.connect(settings)
    try:
        await broker.publish_heartbeat(beat)
    finally:
        await broker.close()
    return beat


async def heartbeat(
    app: FastAPI,
    settings: Settings,
    *,
    actors: int = 1,
    at: datetime | None = None,
    bridge_id: str = "test-bridge",
) -> BridgeHeartbeat:
    """Publish a bridge heartbeat as a running bridge would (`/readyz` needs one), and return
    once the app's event relay holds it."""
    beat = await publish_heartbeat(settings, actors=actors, at=at, bridge_id=bridge_id)
    runtime: Runtime = app.state.runtime
    async with asyncio.timeout(10):
        while beat not in runtime.events.bridges():
            await asyncio.sleep(0.02)
    return beat


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@contextlib.asynccontextmanager
async def as_key(app: FastAPI, key: str | None) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client sending `key` on every request (None: no key)."""
    transport = httpx.ASGITransport(app=app)
    headers = auth(key) if key else {}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://api", headers=headers
    ) as client:
        yield client
