"""The outbox relay: publishes what a transaction stored for the broker.

Every job transition (`jobs.store`) writes its messages in its own transaction: a job
message for the jobs queue (submit, recovery's re-queue) and a `JobEvent` for the events
exchange. The store hands the committed rows to the relay, which publishes them as they are
(with confirms) and stamps them sent; anything else unsent (the broker was down, another
process wrote it, this process died) is found by polling. A crash between publish and stamp
re-publishes: consumers treat jobs at-least-once and skip finished ones, and subscribers drop
an event whose job `version` they have seen.

Stamping costs no transaction of its own while jobs move: the store's next transition takes
the ids published since its last one (`take_sent`) and stamps them in its own transaction;
the relay stamps what is left once it has had nothing to do for `STAMP_AFTER_S`. A periodic
poll reads only rows older than `POLL_GRACE_S`, so it does not re-publish rows a live relay
has published and not stamped yet.

A sent event (of a job or a batch) is deleted rather than stamped (nothing reads it again);
a job message is kept, stamped, while its job may need it (`jobs.store`'s recovery re-queues
from it), and deleted by the transition that ends the job. So the table holds what is unsent
and the messages of unfinished jobs, however long the engine runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import NamedTuple, cast

from opentelemetry.trace import SpanKind
from sqlalchemy import Connection, DateTime, Table, bindparam, delete, select, update

from jobs import tracing
from jobs.broker import BATCH_TYPE, Broker
from jobs.contract import JobEvent
from jobs.db import Database
from jobs.db.tables import OutboxRow

log = logging.getLogger(__name__)

REMEMBERED = 10_000
STAMP_AFTER_S = 0.2
"""Published rows no transition took along are stamped after the relay idled this long."""
POLL_GRACE_S = 5.0
"""A periodic poll leaves rows younger than this to the relay that wrote them."""
JOB = "job"
EVENT = "event"
BATCH = "batch"

_outbox = cast(Table, OutboxRow.__table__)
_TS = DateTime(timezone=True)
_PENDING = (
    select(_outbox.c.id, _outbox.c.kind, _outbox.c.body, _outbox.c.trace)
    .where(_outbox.c.sent_at.is_(None), _outbox.c.created_at < bindparam("b_before", type_=_TS))
    .order_by(_outbox.c.id)
    .limit(bindparam("b_limit"))
)
_SENT_IDS = _outbox.c.id.in_(bindparam("b_ids", expanding=True))
_DELETE_SENT_EVENTS = delete(_outbox).where(_SENT_IDS, _outbox.c.kind.in_([EVENT, BATCH]))
_STAMP_SENT = update(_outbox).where(_SENT_IDS).values(sent_at=bindparam("b_at", type_=_TS))
_DELETE_JOB_MESSAGES = delete(_outbox).where(
    _outbox.c.job_id == bindparam("b_job_id"), _outbox.c.kind == JOB
)


class Pending(NamedTuple):
    """An outbox row to publish: `kind` is `JOB`, `EVENT` or `BATCH`; `trace` the
    `traceparent` it is published under (`jobs.tracing`), if its writer was traced."""

    id: int
    kind: str
    body: bytes
    trace: str | None = None


def pending_outbox(
    conn: Connection, limit: int = 100, before: datetime | None = None
) -> list[Pending]:
    """Unsent rows, oldest first; only those written before `before`, if given."""
    cutoff = before or datetime.now(UTC) + timedelta(days=1)
    rows = conn.execute(_PENDING, {"b_limit": limit, "b_before": cutoff}).all()
    return [Pending(int(r[0]), str(r[1]), bytes(r[2]), r[3]) for r in rows]


def mark_sent(conn: Connection, ids: Sequence[int], at: datetime) -> None:
    """Rows `ids` went out: events are deleted, job messages stamped (recovery may need
    them until their job ends)."""
    if ids:
        conn.execute(_DELETE_SENT_EVENTS, {"b_ids": list(ids)})
        conn.execute(_STAMP_SENT, {"b_ids": list(ids), "b_at": at})


def forget_job_messages(conn: Connection, job_id: str) -> None:
    """Delete `job_id`'s job messages, sent or not: it ended, nothing will run it again."""
    conn.execute(_DELETE_JOB_MESSAGES, {"b_job_id": job_id})


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
        # Published, not stamped yet: the store's next transition or the relay stamps them.
        self._unstamped: list[int] = []

    def take_sent(self) -> list[int]:
        """The ids published and not stamped yet, for the caller's transaction to stamp
        (`mark_sent`); hand them back with `sent_again` if that transaction fails."""
        taken, self._unstamped = self._unstamped, []
        return taken

    def sent_again(self, ids: Sequence[int]) -> None:
        self._unstamped.extend(ids)

    def notify(self, rows: list[Pending] | None = None) -> None:
        """Something was committed: publish now instead of at the next poll. `rows` are
        published without reading them back."""
        if rows:
            self._fresh.extend(rows)
        self._wake.set()

    async def publish_event(self, event: JobEvent) -> None:
        """Publish an event that is not stored (progress: a lost tick is harmless). Untraced:
        a long job's ticks would bury its trace's few hops."""
        await self.broker.publish_event(event.encode())

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="outbox-relay")

    async def stop(self) -> None:
        """Publish what was handed over already, stamp what went out, then stop."""
        if self._task is not None:
            if self._fresh or self._unstamped:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.flush(), 5.0)
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def flush(self) -> None:
        """Until every row handed over so far went out (or failed to), and is stamped."""
        while self._fresh:
            fresh, self._fresh = self._fresh, []
            await self._publish(fresh)
        await self.stamp()

    async def stamp(self) -> None:
        """Stamp, in a transaction of its own, what went out and no transition took along."""
        if ids := self.take_sent():
            try:
                await self.db.run(mark_sent, ids, datetime.now(UTC))
            except BaseException:
                self.sent_again(ids)
                raise

    async def run(self) -> None:
        grace = 0.0  # the first pass takes every unsent row: this process may have just died
        while True:
            self._wake.clear()
            fresh, self._fresh = self._fresh, []
            try:
                if fresh:
                    published = await self._publish(fresh)
                elif self.poll_s is not None:
                    published = await self.publish_pending(grace_s=grace)
                    grace = POLL_GRACE_S
                else:
                    published = 0
            except Exception as exc:  # broker or database away: the rows wait, poll again
                log.warning("outbox relay: %s; retrying", exc)
                published = 0
            if published == 0 and not self._fresh:
                if self._unstamped:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), STAMP_AFTER_S)
                    if self._wake.is_set():
                        continue
                    try:
                        await self.stamp()
                    except Exception as exc:
                        log.warning("outbox relay: stamping sent rows: %s; retrying", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_s or 3600.0)

    async def publish_pending(self, batch: int = 100, grace_s: float = 0.0) -> int:
        """Publish one batch of unsent rows older than `grace_s`; return how many went out."""
        before = datetime.now(UTC) - timedelta(seconds=grace_s) if grace_s else None
        pending = await self.db.run(pending_outbox, batch, before)
        return await self._publish(pending)

    async def _publish(self, rows: list[Pending]) -> int:
        sent: list[int] = []
        try:
            for row in rows:
                if row.id in self._published:
                    continue
                if row.trace is None:
                    await self._send(row, {})
                else:
                    with tracing.span(
                        f"outbox publish {row.kind}", row.trace, kind=SpanKind.PRODUCER
                    ):
                        await self._send(row, tracing.headers())
                sent.append(row.id)
                self._published[row.id] = None
                if len(self._published) > REMEMBERED:
                    self._published.popitem(last=False)
        finally:
            self._unstamped.extend(sent)
        return len(sent)

    async def _send(self, row: Pending, headers: dict[str, str]) -> None:
        if row.kind == EVENT:
            await self.broker.publish_event(row.body, headers=headers)
        elif row.kind == BATCH:
            await self.broker.publish_event(row.body, BATCH_TYPE, headers=headers)
        else:
            await self.broker.publish_job(row.body, headers=headers)
