"""Fixtures for the API: the app run in-process inside its lifespan, and removal of each
test's queues and exchanges afterwards.

`settings` here is the root fixture with authentication OFF (`--dev`): the tests of uploads,
jobs and subscriptions are about those features. `secure_settings` turns it on; the tests of
keys and ownership (`test_auth.py`, `test_ownership.py`...) use it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from api_client import running
from fastapi import FastAPI

from actors.pool import ActorPool
from bridge.service import Bridge
from graph_api.runtime import Runtime
from jobs.settings import Settings
from tests.conftest import drop_topology, free_port


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"auth_enabled": False})


@pytest.fixture
def secure_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"auth_enabled": True})


@pytest.fixture(autouse=True)
async def _drop_topology(settings: Settings) -> AsyncIterator[None]:
    """Delete this test's durable queues and exchanges so RabbitMQ does not fill up."""
    yield
    await drop_topology(settings)


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    async with running(settings) as pair:
        yield pair


@pytest.fixture
def client(api: tuple[FastAPI, httpx.AsyncClient]) -> httpx.AsyncClient:
    return api[1]


@pytest.fixture
def runtime(api: tuple[FastAPI, httpx.AsyncClient]) -> Runtime:
    runtime: Runtime = api[0].state.runtime
    return runtime


@pytest.fixture
async def bridge(
    ray_cluster: None, settings: Settings, api: tuple[FastAPI, httpx.AsyncClient]
) -> AsyncIterator[Bridge]:
    """A bridge with one small actor beside the in-process API, on the session's Ray: for
    the tests that need jobs to run (analysis, loudness)."""
    settings = settings.model_copy(
        update={"pool_size": 1, "actor_num_cpus": 0.25, "ray_dashboard_port": free_port()}
    )
    pool = await ActorPool.start(settings)
    running = Bridge(settings, pool=pool, stop_grace_s=5.0)
    await running.start()
    yield running
    await running.stop()
    await pool.shutdown()
