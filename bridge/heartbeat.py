"""The bridge's heartbeat: every `Settings.heartbeat_interval_s` it tells the API replicas
(events exchange, see `jobs.broker.Broker.publish_heartbeat`) how many pool actors answered,
so `/readyz` can say whether Ray is reachable without the API talking to Ray.

>>> beat = Heartbeat(settings, broker, pool)      # doctest: +SKIP
>>> beat.start(); ...; await beat.stop()          # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid

from actors.pool import ActorPool
from jobs.broker import Broker
from jobs.contract import BridgeHeartbeat
from jobs.settings import Settings

log = logging.getLogger(__name__)


def new_bridge_id() -> str:
    """Unique per bridge process, readable in `/readyz`: host, pid and a random tail."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


async def live_actors(pool: ActorPool, timeout_s: float) -> int:
    """Actors that answered `stats` within `timeout_s`, each counted alone: one actor being
    replaced (warming up) does not hide the others; 0 when none can be reached."""
    try:
        stats = await asyncio.wait_for(pool.stats(timeout_s), timeout_s + 1.0)
    except Exception as exc:  # Ray gone, actors hanging: nothing is alive as far as we know
        log.warning("the actor pool did not answer: %r", exc)
        return 0
    return sum(1 for s in stats if "error" not in s)


class Heartbeat:
    """A background task publishing a `BridgeHeartbeat` now and then every interval; a
    failed beat is logged and the next one tried, never raised."""

    def __init__(
        self, settings: Settings, broker: Broker, pool: ActorPool, bridge_id: str | None = None
    ) -> None:
        self.settings = settings
        self.broker = broker
        self.pool = pool
        self.bridge_id = bridge_id or new_bridge_id()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="heartbeat")

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def beat(self) -> BridgeHeartbeat:
        """Ask the pool and publish one heartbeat; returns what was sent."""
        interval_s = self.settings.heartbeat_interval_s
        heartbeat = BridgeHeartbeat(
            bridge_id=self.bridge_id,
            hostname=socket.gethostname(),
            ray_address=self.settings.ray_address or "local",
            actors_alive=await live_actors(self.pool, timeout_s=max(interval_s, 1.0)),
            capacity=self.pool.capacity,
        )
        await self.broker.publish_heartbeat(heartbeat)
        return heartbeat

    async def _run(self) -> None:
        while True:
            try:
                await self.beat()
            except Exception as exc:
                log.warning("publishing the heartbeat failed; retrying: %r", exc)
            await asyncio.sleep(self.settings.heartbeat_interval_s)
