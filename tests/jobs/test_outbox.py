"""The outbox relay against a real RabbitMQ and real SQLite / PostgreSQL: a handed-over row
goes out without waiting for a poll, an unannounced one is found by polling, and a row both
polled and handed over goes out once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from job_records import queued_job, stored_file

from jobs.broker import Broker
from jobs.db import Database
from jobs.outbox import OutboxRelay, Pending, pending_outbox
from jobs.settings import Settings


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
