"""The outbox relay: publishes messages that `create_job` stored with the job row.

`submitJob` commits the job and its message together and only then nudges the relay, so a job
is accepted even while RabbitMQ is down; the relay keeps retrying and publishes it (with a
confirm) once the broker is back, then stamps the row sent. A crash between publish and stamp
re-publishes: consumers treat jobs at-least-once and skip finished ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from jobs.broker import Broker
from jobs.db import Database, lifecycle
from jobs.db import repository as repo

log = logging.getLogger(__name__)


class OutboxRelay:
    def __init__(self, db: Database, broker: Broker, poll_s: float = 1.0) -> None:
        self.db = db
        self.broker = broker
        self.poll_s = poll_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def notify(self) -> None:
        """Something was written: publish now instead of at the next poll."""
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="outbox-relay")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def run(self) -> None:
        while True:
            try:
                published = await self.publish_pending()
            except Exception as exc:  # broker or database away: keep the rows, try again
                log.warning("outbox relay: %s; retrying", exc)
                published = 0
            if published == 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_s)

    async def publish_pending(self, batch: int = 100) -> int:
        """Publish one batch; return how many went out."""
        async with self.db.connect() as conn:
            pending = await lifecycle.pending_outbox(conn, batch)
        sent: list[int] = []
        try:
            for row_id, body in pending:
                await self.broker.publish_job(body)
                sent.append(row_id)
        finally:
            if sent:
                async with self.db.connect() as conn:
                    await lifecycle.mark_sent(conn, sent, repo.now())
        return len(sent)
