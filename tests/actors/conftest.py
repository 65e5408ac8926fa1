"""One local Ray for the whole pytest session and one warm pool for the actor tests.

Ray may already be up when tests/bridge ran first in the same session: then it is reused.
Actors reserve half a CPU each so the bridge tests' pools fit next to this one.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from actors.pool import ActorPool
from jobs.settings import Settings


@pytest.fixture(scope="session")
def pool_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        data_dir=tmp_path_factory.mktemp("actors"),
        queue_prefix=f"test-actors-{uuid.uuid4().hex[:8]}",
        pool_size=2,
        actor_num_cpus=0.5,
        block_frames=4096,
        ir_cache_bytes=64 * 2**20,
    )


@pytest.fixture(scope="session")
async def pool(ray_cluster: None, pool_settings: Settings) -> AsyncIterator[ActorPool]:
    started = await ActorPool.start(pool_settings)
    yield started
    await started.shutdown()


@pytest.fixture
def storage_root(pool_settings: Settings) -> Path:
    root = pool_settings.storage_path
    (root / "in").mkdir(parents=True, exist_ok=True)
    return root
