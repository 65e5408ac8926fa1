"""The bridge's heartbeat: what the API's `/readyz` learns about Ray from."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from conftest import Harness, RunningBridge

from actors.pool import ActorPool
from bridge.heartbeat import Heartbeat, live_actors
from jobs.contract import BridgeHeartbeat
from jobs.settings import Settings


async def _heartbeats(harness: Harness, count: int, timeout_s: float = 30.0) -> None:
    async with asyncio.timeout(timeout_s):
        while len(harness.heartbeats) < count:
            await asyncio.sleep(0.02)


async def test_a_started_bridge_publishes_heartbeats_with_the_pools_actor_count(
    bridge_settings: Settings, shared_pool: ActorPool
) -> None:
    settings = bridge_settings.model_copy(update={"heartbeat_interval_s": 0.2})
    async with RunningBridge(settings, shared_pool) as harness:
        await _heartbeats(harness, 3)
        beats = list(harness.heartbeats)
        assert {b.bridge_id for b in beats} == {harness.bridge.bridge_id}
        assert all(b.actors_alive == shared_pool.capacity == b.capacity == 2 for b in beats)
        assert all(b.ray_address == "local" for b in beats)
        assert beats == sorted(beats, key=lambda b: b.at)
        assert (datetime.now(UTC) - beats[-1].at).total_seconds() < 10
        assert harness.events == []  # heartbeats are not job events
        await harness.bridge.stop()
        assert harness.bridge.heartbeat is not None and not harness.bridge.heartbeat.running
        # A beat sent now arrives after any the bridge sent before it stopped.
        seen = len(harness.heartbeats)
        marker = BridgeHeartbeat(
            bridge_id="marker", hostname="t", ray_address="-", actors_alive=0, capacity=0
        )
        await harness.broker.publish_heartbeat(marker)
        await _heartbeats(harness, seen + 1)
        late = [b for b in harness.heartbeats[seen:] if b.bridge_id != "marker"]
        assert late == [], "stop() ended them"


class _UnreachablePool:
    capacity = 2

    async def stats(self, timeout_s: float | None = None) -> list[dict[str, object]]:
        raise ConnectionError("Ray is gone")


class _HangingPool:
    capacity = 2

    async def stats(self, timeout_s: float | None = None) -> list[dict[str, object]]:
        await asyncio.sleep(3600)
        return []


async def test_a_pool_that_cannot_be_reached_reports_no_live_actor() -> None:
    assert await live_actors(_UnreachablePool(), timeout_s=1.0) == 0  # type: ignore[arg-type]
    assert await live_actors(_HangingPool(), timeout_s=0.1) == 0  # type: ignore[arg-type]


async def test_dead_actors_do_not_count() -> None:
    class HalfDead:
        capacity = 2

        async def stats(self, timeout_s: float | None = None) -> list[dict[str, object]]:
            return [{"name": "a", "busy": False}, {"name": "b", "error": "RayActorError()"}]

    assert await live_actors(HalfDead(), timeout_s=1.0) == 1  # type: ignore[arg-type]


async def test_failed_beats_are_retried_not_raised(bridge_settings: Settings) -> None:
    settings = bridge_settings.model_copy(update={"heartbeat_interval_s": 0.05})
    sent: list[int] = []

    class FlakyBroker:
        async def publish_heartbeat(self, heartbeat: object) -> None:
            sent.append(len(sent))
            if len(sent) < 3:
                raise ConnectionError("broker away")

    beat = Heartbeat(settings, FlakyBroker(), _UnreachablePool())  # type: ignore[arg-type]
    beat.start()
    try:
        async with asyncio.timeout(10):
            while len(sent) < 4:
                await asyncio.sleep(0.02)
    finally:
        await beat.stop()
