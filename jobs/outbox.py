"""The outbox relay: publishes messages that `create_job` stored with the job row.

`submitJob` commits the job and its message together and only then hands the message to the
relay, so a job is accepted even while RabbitMQ is down; the relay publishes it (with a
confirm) and stamps the row sent. Messages handed over are published as they are, without
reading them back; anything else unsent (the broker was down, another replica wrote it, this
process died) is found by polling. A crash between publish and stamp re-publishes:
consumers treat jobs at-least-once and skip finished ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict

from jobs.broker import Broker
from jobs.db import Database, lifecycle
from jobs.db import repository as repo

log = logging.getLogger(__name__)

REMEMBERED = 10_000


class OutboxRelay:
    def __init__(self, db: Database, broker: Broker, poll_s: float = 1.0) -> None:
        self.db = db
        self.broker = broker
        self.poll_s = poll_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._fresh: list[tuple[int, bytes]] = []
        # Rows published lately: a poll may read a row before it is handed over.
        self._published: OrderedDict[int, None] = OrderedDict()

    def notify(self, row: tuple[int, bytes] | None = None) -> None:
        """Something was committed: publish now instead of at the next poll. `row`, the
        outbox row's (id, body), is published without reading it back."""
        if row is not None:
            self._fresh.append(row)
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="outbox-relay")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def run(self) -> None:
        while True:
            self._wake.clear()
            fresh, self._fresh = self._fresh, []
            try:
                if fresh:
                    published = await self._publish(fresh)
                else:
                    published = await self.publish_pending()
            except Exception as exc:  # broker or database away: the rows wait, poll again
                log.warning("outbox relay: %s; retrying", exc)
                published = 0
            if published == 0 and not self._fresh:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_s)

    async def publish_pending(self, batch: int = 100) -> int:
        """Publish one batch of unsent rows; return how many went out."""
        pending = await self.db.run(lifecycle.pending_outbox, batch)
        return await self._publish(pending)

    async def _publish(self, rows: list[tuple[int, bytes]]) -> int:
        sent: list[int] = []
        try:
            for row_id, body in rows:
                if row_id in self._published:
                    continue
                await self.broker.publish_job(body)
                sent.append(row_id)
                self._published[row_id] = None
                if len(self._published) > REMEMBERED:
                    self._published.popitem(last=False)
        finally:
            if sent:
                await self.db.run(lifecycle.mark_sent, sent, repo.now())
        return len(sent)
