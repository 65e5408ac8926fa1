"""What one API process holds while it runs: database, storage, broker link, relays.

The broker is optional at any moment: when RabbitMQ is down at start the process still
serves uploads and accepts jobs (they wait in the outbox) while a background task keeps
connecting; once connected, the outbox relay and the event relay start. After that the robust
connection reconnects on its own. Every `sweep_interval_s` a background task removes blobs
nothing refers to (`jobs.sweep`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from graph_api.auth import KeyChecks
from graph_api.events import EventRelay
from jobs import tracing
from jobs.broker import Broker
from jobs.contract import ControlMessage
from jobs.db import Database
from jobs.errors import BrokerUnavailable
from jobs.keyring import server_key
from jobs.outbox import OutboxRelay
from jobs.settings import Settings
from jobs.storage import open_storage
from jobs.store import JobStore
from jobs.sweep import sweep_forever

if TYPE_CHECKING:
    from graph_api.metrics import Metrics

log = logging.getLogger(__name__)

RETRY_MIN_S = 1.0
RETRY_MAX_S = 30.0


class Runtime:
    """Built by the app's lifespan; resolvers and routes reach it through the context."""

    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        self.settings = settings
        if metrics is None:
            from graph_api.metrics import Metrics

            metrics = Metrics()
        self.metrics = metrics
        self.db = Database(settings.sqlalchemy_url)
        self.key_checks = KeyChecks(self.db)
        self.storage = open_storage(settings)
        self.fernet = server_key(settings)
        self.events = EventRelay(settings.queue_prefix)
        self.broker: Broker | None = None
        self.relay: OutboxRelay | None = None
        # Until the broker answers, this process's changes reach its own subscribers directly.
        self.store = JobStore(self.db, local=self.events.dispatch)
        self._connector: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._storage_probe: asyncio.Future[None] | None = None
        self.metrics.watch(self)

    async def start(self) -> None:
        tracing.setup(self.settings, "api")
        await self.db.migrate()
        if self.settings.sweep_interval_s > 0:
            self._sweeper = asyncio.create_task(
                sweep_forever(
                    self.db,
                    self.storage,
                    self.settings.sweep_interval_s,
                    self.settings.sweep_min_age_s,
                ),
                name="storage-sweep",
            )
        try:
            await self._connect()
        except Exception as exc:
            log.warning(
                "RabbitMQ is not reachable; serving anyway (jobs wait in the outbox) and "
                "retrying in the background. %s",
                exc,
            )
            self._connector = asyncio.create_task(self._keep_connecting(), name="broker-connect")

    async def _connect(self) -> None:
        broker = await Broker.connect(self.settings)
        try:
            await self.events.attach(broker)
        except BaseException:
            await broker.close()
            raise
        self.broker = broker
        self.relay = OutboxRelay(self.db, broker)
        self.relay.start()
        self.store.relay = self.relay
        log.info("connected to RabbitMQ")

    async def _keep_connecting(self) -> None:
        delay = RETRY_MIN_S
        while True:
            await asyncio.sleep(delay)
            try:
                await self._connect()
                return
            except BrokerUnavailable as exc:
                log.warning("RabbitMQ still unreachable, next try in %.0f s: %s", delay, exc)
            except Exception:
                log.exception("connecting to RabbitMQ failed")
            delay = min(delay * 2, RETRY_MAX_S)

    async def check_storage(self, timeout_s: float) -> None:
        """Raise unless the blob store answers within `timeout_s`. One probe runs at a time:
        probes of a hanging store must not fill the thread pool every request shares."""
        probe = self._storage_probe
        if probe is None or probe.done():
            probe = asyncio.ensure_future(asyncio.to_thread(self.storage.check))
            probe.add_done_callback(lambda f: f.cancelled() or f.exception())
            self._storage_probe = probe
        await asyncio.wait_for(asyncio.shield(probe), timeout_s)

    @property
    def broker_connected(self) -> bool:
        return self.broker is not None and self.broker.connected

    async def send_control(self, message: ControlMessage) -> None:
        if self.broker is None or not self.broker.connected:
            raise BrokerUnavailable("RabbitMQ is not reachable; try again shortly")
        await self.broker.publish_control(message)

    async def stop(self) -> None:
        for task in (self._connector, self._sweeper):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self.relay is not None:
            self.store.relay = None
            await self.relay.stop()
        with contextlib.suppress(Exception):
            await self.events.close()
        if self.broker is not None:
            with contextlib.suppress(Exception):
                await self.broker.close()
        await self.db.close()
