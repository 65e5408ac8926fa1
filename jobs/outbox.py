"""The outbox relay: publishes what a transaction stored for the broker.

Every job transition (`jobs.store`) writes its messages in its own transaction: a job
message for the jobs queue (submit, recovery's re-queue) and a `JobEvent` for the events
exchange. The store hands the committed rows to the relay, which publishes them as they are
(with confirms) and stamps them sent; anything else unsent (the broker was down, another
process wrote it, this process died) is found by polling. A crash between publish and stamp
re-publishes: consumers treat jobs at-least-once and skip finished ones, and subscribers drop
an event whose job `version` they have seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from datetime import UTC, datetime
from typing import NamedTuple, cast

from sqlalchemy import Connection, DateTime, Table, bindparam, select, update

from jobs.broker import BATCH_TYPE, Broker
from jobs.contract import JobEvent
from jobs.db import Database
from jobs.db.tables import OutboxRow

log = logging.getLogger(__name__)

REMEMBERED = 10_000
JOB = "job"
EVENT = "event"
BATCH = "batch"

_outbox = cast(Table, OutboxRow.__table__)
_PENDING = (
    select(_outbox.c.id, _outbox.c.kind, _outbox.c.body)
    .where(_outbox.c.sent_at.is_(None))
    .order_by(_outbox.c.id)
    .limit(bindparam("b_limit"))
)
_MARK_SENT = (
    update(_outbox)
    .where(_outbox.c.id.in_(bindparam("b_ids", expanding=True)))
    .values(sent_at=bindparam("b_at", type_=DateTime(timezone=True)))
)


class Pending(NamedTuple):
    """An outbox row to publish: `kind` is `JOB`, `EVENT` or `BATCH`."""

    id: int
    kind: str
    body: bytes


def pending_outbox(conn: Connection, limit: int = 100) -> list[Pending]:
    rows = conn.execute(_PENDING, {"b_limit": limit}).all()
    return [Pending(int(r[0]), str(r[1]), bytes(r[2])) for r in rows]


def mark_sent(conn: Connection, ids: list[int], at: datetime) -> None:
    if ids:
        conn.execute(_MARK_SENT, {"b_ids": ids, "b_at": at})


class OutboxRelay:
    """`poll_s=None`: publish only what is handed over (the bridge: the API's relays poll,
    and publish what a bridge left unsent when it died)."""

    def __init__(self, db: Database, broker: Broker, poll_s: float | None = 1.0) -> None:
        self.db = db
        self.broker = broker
        self.poll_s = poll_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._fresh: list[Pending] = []
        # Rows published lately: a poll may read a row before it is handed over.
        self._published: OrderedDict[int, None] = OrderedDict()

    def notify(self, rows: list[Pending] | None = None) -> None:
        """Something was committed: publish now instead of at the next poll. `rows` are
        published without reading them back."""
        if rows:
            self._fresh.extend(rows)
        self._wake.set()

    async def publish_event(self, event: JobEvent) -> None:
        """Publish an event that is not stored (progress: a lost tick is harmless)."""
        await self.broker.publish_event(event.encode())

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="outbox-relay")

    async def stop(self) -> None:
        """Publish what was handed over already, then stop."""
        if self._task is not None:
            if self._fresh:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.flush(), 5.0)
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def flush(self) -> None:
        """Until every row handed over so far went out (or failed to)."""
        while self._fresh:
            fresh, self._fresh = self._fresh, []
            await self._publish(fresh)

    async def run(self) -> None:
        while True:
            self._wake.clear()
            fresh, self._fresh = self._fresh, []
            try:
                if fresh:
                    published = await self._publish(fresh)
                elif self.poll_s is not None:
                    published = await self.publish_pending()
                else:
                    published = 0
            except Exception as exc:  # broker or database away: the rows wait, poll again
                log.warning("outbox relay: %s; retrying", exc)
                published = 0
            if published == 0 and not self._fresh:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_s or 3600.0)

    async def publish_pending(self, batch: int = 100) -> int:
        """Publish one batch of unsent rows; return how many went out."""
        pending = await self.db.run(pending_outbox, batch)
        return await self._publish(pending)

    async def _publish(self, rows: list[Pending]) -> int:
        sent: list[int] = []
        try:
            for row in rows:
                if row.id in self._published:
                    continue
                if row.kind == EVENT:
                    await self.broker.publish_event(row.body)
                elif row.kind == BATCH:
                    await self.broker.publish_event(row.body, BATCH_TYPE)
                else:
                    await self.broker.publish_job(row.body)
                sent.append(row.id)
                self._published[row.id] = None
                if len(self._published) > REMEMBERED:
                    self._published.popitem(last=False)
        finally:
            if sent:
                await self.db.run(mark_sent, sent, datetime.now(UTC))
        return len(sent)
