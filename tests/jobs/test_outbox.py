"""The outbox relay against a real RabbitMQ and real SQLite / PostgreSQL: a handed-over row
goes out without waiting for a poll, an unannounced one is found by polling, a row both
polled and handed over goes out once, stamps ride on the next transition, and sent rows do
not pile up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import cast

import pytest
from job_records import queued_job, stored_file
from sqlalchemy import Table, select

from jobs.broker import Broker
from jobs.db import Database
from jobs.db.tables import OutboxRow
from jobs.errors import JobNotFound, JobTimeout
from jobs.outbox import EVENT, JOB, POLL_GRACE_S, OutboxRelay, Pending, pending_outbox
from jobs.settings import Settings
from jobs.store import JobStore


@pytest.fixture
async def broker(settings: Settings) -> AsyncIterator[Broker]:
    broker = await Broker.connect(settings)
    yield broker
    await broker.close()


async def _published(broker: Broker, settings: Settings, settle_s: float = 0.5) -> list[bytes]:
    """Every message in the jobs queue, taken off it: waits until none came for `settle_s`."""
    queue = await broker.channel.get_queue(settings.jobs_queue, ensure=False)
    bodies: list[bytes] = []
    quiet_since = asyncio.get_running_loop().time()
    while asyncio.get_running_loop().time() - quiet_since < settle_s:
        message = await queue.get(fail=False, no_ack=True)
        if message is None:
            await asyncio.sleep(0.02)
        else:
            bodies.append(message.body)
            quiet_since = asyncio.get_running_loop().time()
    return bodies


async def _unsent(db: Database) -> list[Pending]:
    return await db.run(pending_outbox)


async def _until(predicate: object, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():  # type: ignore[operator]
            await asyncio.sleep(0.02)


async def test_handed_over_row_goes_out_before_any_poll(
    database: Database, broker: Broker, settings: Settings
) -> None:
    f = await stored_file(database)
    await queued_job(database, f.id, message=b"first")
    relay = OutboxRelay(database, broker, poll_s=3600)  # no poll in this test's time
    relay.start()
    try:
        # The relay's first pass polls (it starts with the unsent rows); then it sleeps.
        assert await _published(broker, settings) == [b"first"]
        await queued_job(database, f.id, message=b"second")
        [fresh] = await _unsent(database)
        relay.notify([fresh])
        assert await _published(broker, settings) == [b"second"]
        await _until(lambda: _unsent_is(database, []))
    finally:
        await relay.stop()


async def test_a_row_polled_and_then_handed_over_goes_out_once(
    database: Database, broker: Broker, settings: Settings
) -> None:
    f = await stored_file(database)
    await queued_job(database, f.id, message=b"only")
    [row] = await _unsent(database)
    relay = OutboxRelay(database, broker, poll_s=3600)
    assert await relay.publish_pending() == 1  # a poll read it first...
    relay.notify([row])  # ...then the API hands it over
    relay.start()
    try:
        assert await _published(broker, settings) == [b"only"]
    finally:
        await relay.stop()
    assert await _unsent(database) == []


async def _unsent_is(db: Database, rows: list[Pending]) -> bool:
    return await _unsent(db) == rows


async def _rows(db: Database) -> list[tuple[str, bool]]:
    """Every outbox row, sent or not: (kind, stamped sent)."""
    table = cast(Table, OutboxRow.__table__)
    query = select(table.c.kind, table.c.sent_at.is_not(None)).order_by(table.c.id)
    return await db.run(lambda conn: [(str(k), bool(s)) for k, s in conn.execute(query)])


async def test_sent_rows_do_not_pile_up(
    database: Database, broker: Broker, settings: Settings
) -> None:
    """A sent event is deleted; a job message stays (stamped) while its job may be
    recovered from it, and goes with the transition that ends the job."""
    f = await stored_file(database)
    job = await queued_job(database, f.id, message=b"run")
    relay = OutboxRelay(database, broker, poll_s=3600)
    store = JobStore(database, relay)
    relay.start()
    try:
        assert await _published(broker, settings) == [b"run"]
        await _until(lambda: _rows_are(database, [(JOB, True)]))
        await store.start(job.id, "dsp-0")  # its RUNNING event: published, then deleted
        await _until(lambda: _rows_are(database, [(JOB, True)]))
        await store.fail(job.id, JobTimeout("too slow"))
        assert (JOB, True) not in await _rows(database)  # the job message went with it
        await _until(lambda: _rows_are(database, []))  # and the FAILED event once sent
    finally:
        await relay.stop()


async def test_a_transition_stamps_what_the_relay_sent_before_it(
    database: Database, broker: Broker, settings: Settings
) -> None:
    """No transaction of its own for stamping while jobs move: the next transition takes
    the sent ids along (and gives them back if it fails)."""
    f = await stored_file(database)
    job = await queued_job(database, f.id, message=b"run")
    relay = OutboxRelay(database, broker, poll_s=3600)
    store = JobStore(database, relay)
    assert await relay.publish_pending() == 1
    assert await _rows(database) == [(JOB, False)]  # published, not stamped yet
    with pytest.raises(JobNotFound):
        await store.start("no-such-job", "dsp-0")
    assert await _rows(database) == [(JOB, False)]  # that transaction rolled back...
    await store.start(job.id, "dsp-0")  # ...this one stamps it
    assert await _rows(database) == [(JOB, True), (EVENT, False)]
    assert relay.take_sent() == []


async def test_a_periodic_poll_leaves_young_rows_to_their_writer(database: Database) -> None:
    f = await stored_file(database)
    await queued_job(database, f.id, message=b"young")
    assert [p.body for p in await database.run(pending_outbox)] == [b"young"]
    a_while_ago = datetime.now(UTC) - timedelta(seconds=POLL_GRACE_S)
    assert await database.run(pending_outbox, 100, a_while_ago) == []


async def _rows_are(db: Database, rows: list[tuple[str, bool]]) -> bool:
    return await _rows(db) == rows
