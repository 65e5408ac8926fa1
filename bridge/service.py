"""`Bridge`: the long-running service between RabbitMQ and the actor pool.

>>> bridge = Bridge(Settings())          # doctest: +SKIP
>>> await bridge.start()                 # database, broker, Ray pool, recovery, consumers
>>> await bridge.run_until_stopped()     # until SIGINT/SIGTERM or `request_stop()`

Back-pressure: the job queue is consumed with `prefetch_count = pool capacity +
in_flight_extra`, so RabbitMQ keeps every other message; a second bridge (on the same Ray
cluster or another) simply shares the queue. While it runs, a bridge publishes heartbeats
(`bridge.heartbeat`) from which the API's `/readyz` learns that Ray is reachable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Coroutine
from typing import Any

from aio_pika.abc import AbstractIncomingMessage, AbstractQueue, AbstractRobustChannel

from actors.pool import ActorPool
from bridge.consumer import JobConsumer
from bridge.control import ControlConsumer
from bridge.deadletters import DeadLetterConsumer
from bridge.heartbeat import Heartbeat, new_bridge_id
from bridge.recovery import orphaned_jobs, recover_orphans
from jobs import tracing
from jobs.broker import Broker, declare
from jobs.db import Database
from jobs.deliveries import DeliveryWorker
from jobs.keyring import server_key
from jobs.outbox import OutboxRelay
from jobs.settings import Settings
from jobs.storage import open_storage
from jobs.store import JobStore

log = logging.getLogger(__name__)

Handler = Callable[[AbstractIncomingMessage], Coroutine[Any, Any, object]]


class Bridge:
    """Pass `pool` to share one already-started `ActorPool` (tests, embedding); the bridge
    then leaves it running on `stop()`."""

    def __init__(
        self,
        settings: Settings,
        pool: ActorPool | None = None,
        stop_grace_s: float = 30.0,
        recovery_grace_s: float = 60.0,
    ) -> None:
        self.settings = settings
        self.stop_grace_s = stop_grace_s
        self.recovery_grace_s = recovery_grace_s
        self.recovery: asyncio.Task[None] | None = None
        self._given_pool = pool
        self._pool: ActorPool | None = pool
        self._db: Database | None = None
        self._broker: Broker | None = None
        self._relay: OutboxRelay | None = None
        self.store: JobStore | None = None
        self._channel: AbstractRobustChannel | None = None
        self._consumers: list[tuple[AbstractQueue, str]] = []
        self._tasks: set[asyncio.Task[object]] = set()
        self._stop_requested = asyncio.Event()
        self._stopped = False
        self.jobs: JobConsumer | None = None
        self.bridge_id = new_bridge_id()
        self.heartbeat: Heartbeat | None = None
        self.deliveries: DeliveryWorker | None = None

    @property
    def pool(self) -> ActorPool:
        assert self._pool is not None, "call start() first"
        return self._pool

    @property
    def prefetch(self) -> int:
        return self.pool.capacity + self.settings.in_flight_extra

    async def start(self) -> None:
        """Connect everything, recover orphaned jobs, then start consuming."""
        settings = self.settings
        tracing.setup(settings, "bridge")
        storage = open_storage(settings)
        await asyncio.to_thread(storage.check)
        self._db = Database(settings.sqlalchemy_url)
        if self._db.is_sqlite:
            self._db.on_connect(_sqlite_commit_without_fsync)
        await self._db.migrate()
        self._broker = await Broker.connect(settings)
        # Publishes this bridge's changes; what a dead bridge left unsent, an API relay polls.
        self._relay = OutboxRelay(self._db, self._broker, poll_s=None)
        self._relay.start()
        self.deliveries = DeliveryWorker(settings, self._db, storage, server_key(settings))
        self.deliveries.start()
        self.store = JobStore(self._db, self._relay, deliveries=self.deliveries.notify)
        if self._pool is None:
            self._pool = await ActorPool.start(settings)
        orphans = await orphaned_jobs(self._db, self._pool)

        channel = await self._broker.connection.channel()
        assert isinstance(channel, AbstractRobustChannel)
        self._channel = channel
        await channel.set_qos(prefetch_count=self.prefetch)
        topology = await declare(channel, settings)
        self.jobs = JobConsumer(settings, self._db, self.store, self._pool, storage)
        dead = DeadLetterConsumer(self.store)
        control = ControlConsumer(self._pool)
        control_queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await control_queue.bind(topology.control)
        await self._consume(control_queue, control.handle, no_ack=True)
        await self._consume(topology.dead, dead.handle)
        await self._consume(topology.jobs, self.jobs.handle)
        log.info("bridge consuming %s (prefetch %d)", settings.jobs_queue, self.prefetch)
        self.heartbeat = Heartbeat(settings, self._broker, self._pool, self.bridge_id)
        self.heartbeat.start()
        if orphans:
            self.recovery = asyncio.create_task(self._recover(orphans), name="recovery")

    async def _recover(self, orphans: dict[str, int]) -> None:
        await asyncio.sleep(self.recovery_grace_s)
        assert self.store is not None and self.jobs is not None
        try:
            await recover_orphans(self.settings, self.store, orphans, self.jobs.running)
        except Exception as exc:  # the next start sweeps again
            log.warning("recovery sweep failed: %s", exc)

    async def _consume(self, queue: AbstractQueue, handler: Handler, no_ack: bool = False) -> None:
        async def spawn(message: AbstractIncomingMessage) -> None:
            # One task per message, so up to `prefetch` jobs run concurrently and stop() can
            # wait for (or cancel) exactly the ones in flight.
            task: asyncio.Task[object] = asyncio.create_task(handler(message))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        tag = await queue.consume(spawn, no_ack=no_ack)
        self._consumers.append((queue, tag))

    def request_stop(self) -> None:
        self._stop_requested.set()

    async def run_until_stopped(self) -> None:
        """Serve until SIGINT/SIGTERM or `request_stop()`, then stop gracefully."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self.request_stop)
        try:
            await self._stop_requested.wait()
        finally:
            await self.stop()

    async def stop(self) -> None:
        """Stop consuming, let in-flight jobs finish for `stop_grace_s`, hand the rest back
        to the queue (nack + requeue), then close connections. Safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        if self.heartbeat is not None:
            await self.heartbeat.stop()
        for queue, tag in self._consumers:
            with contextlib.suppress(Exception):
                await queue.cancel(tag)
        self._consumers.clear()
        if self.recovery is not None:
            self.recovery.cancel()
            await asyncio.gather(self.recovery, return_exceptions=True)
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=self.stop_grace_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._channel is not None:
            with contextlib.suppress(Exception):
                await self._channel.close()
        if self.deliveries is not None:
            await self.deliveries.stop()
        if self._relay is not None:
            await self._relay.stop()
        if self._broker is not None:
            await self._broker.close()
        if self._db is not None:
            await self._db.close()
        if self._pool is not None and self._given_pool is None:
            await self._pool.shutdown()


def _sqlite_commit_without_fsync(dbapi_conn: Any, _record: Any) -> None:
    """WAL with `synchronous=NORMAL`: a commit no longer waits for an fsync (the bridge commits
    twice per job). Still atomic and safe against a crash of any process; only a power loss
    may drop the last commits, and a job whose outcome is lost that way is RUNNING with no
    bridge: the recovery sweep re-queues it."""
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
