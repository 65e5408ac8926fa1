"""`myJobUpdates` renderings shared between subscribers (`graph_api.fanout`), over real
websockets: each subscriber still gets its own shape, its own operation id and only its
owner's events, and a revoked key still ends its stream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from api_client import make_key, revoke_key, serving_app, until
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from graph_api.fanout import FRAMES
from graph_api.runtime import Runtime
from jobs.contract import JobEvent
from jobs.settings import Settings
from jobs.states import JobStatus

PLAIN = "subscription { myJobUpdates { jobId status } }"
SHAPED = """
subscription($full: Boolean!) {
  update: myJobUpdates { id: jobId ...When progress message @include(if: $full) __typename }
}
fragment When on JobEvent { at }
"""
WITH_JOB = "subscription { myJobUpdates { jobId job { id } } }"


async def _recv(ws: ClientConnection) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 15))
    return message


@asynccontextmanager
async def _subscribed(
    base: str, key: str, query: str, variables: dict[str, Any] | None = None, op: str = "1"
) -> AsyncIterator[ClientConnection]:
    async with connect(
        f"ws://{base}/graphql", subprotocols=[Subprotocol("graphql-transport-ws")]
    ) as ws:
        init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {key}"}}
        await ws.send(json.dumps(init))
        assert (await _recv(ws))["type"] == "connection_ack"
        payload = {"query": query, "variables": variables or {}}
        await ws.send(json.dumps({"id": op, "type": "subscribe", "payload": payload}))
        yield ws


@asynccontextmanager
async def _two(
    settings: Settings, first_key: str, second_key: str
) -> AsyncIterator[tuple[Runtime, ClientConnection, ClientConnection]]:
    """A served app with a PLAIN subscription of each key, both registered."""
    async with (
        serving_app(settings) as (base, app),
        _subscribed(base, first_key, PLAIN) as first,
        _subscribed(base, second_key, PLAIN) as second,
    ):
        runtime: Runtime = app.state.runtime
        await until(lambda: runtime.events.subscriber_count() == 2)
        yield runtime, first, second


async def test_each_subscriber_gets_its_shape_and_id_from_one_rendering_per_document(
    secure_settings: Settings,
) -> None:
    key = await make_key(secure_settings, "alice")
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    async with serving_app(secure_settings) as (base, app), AsyncExitStack() as stack:
        runtime: Runtime = app.state.runtime
        plain = [
            await stack.enter_async_context(_subscribed(base, key, PLAIN, op=f"plain-{n}"))
            for n in range(3)
        ]
        full = await stack.enter_async_context(
            _subscribed(base, key, SHAPED, {"full": True}, op="full")
        )
        short = await stack.enter_async_context(
            _subscribed(base, key, SHAPED, {"full": False}, op="short")
        )
        with_job = await stack.enter_async_context(_subscribed(base, key, WITH_JOB, op="job"))
        await until(lambda: runtime.events.subscriber_count() == 6)

        before = FRAMES.renders
        runtime.events.dispatch(
            JobEvent(
                job_id="job-1",
                status=JobStatus.RUNNING,
                progress=0.5,
                message="half",
                owner="alice",
                at=at,
            )
        )
        for n, ws in enumerate(plain):
            assert await _recv(ws) == {
                "id": f"plain-{n}",
                "type": "next",
                "payload": {"data": {"myJobUpdates": {"jobId": "job-1", "status": "RUNNING"}}},
            }
        assert await _recv(full) == {
            "id": "full",
            "type": "next",
            "payload": {
                "data": {
                    "update": {
                        "id": "job-1",
                        "at": at.isoformat(),
                        "progress": 0.5,
                        "message": "half",
                        "__typename": "JobEvent",
                    }
                }
            },
        }
        got_short = await _recv(short)
        assert got_short["id"] == "short"
        assert got_short["payload"]["data"]["update"] == {
            "id": "job-1",
            "at": at.isoformat(),
            "progress": 0.5,
            "__typename": "JobEvent",
        }
        # A resolver field (`job`) goes through Strawberry per subscriber, as before: this
        # job does not exist, so its field errors, and only that subscriber sees it.
        got_job = await _recv(with_job)
        assert got_job["id"] == "job" and got_job["type"] == "next"
        assert got_job["payload"]["errors"][0]["extensions"]["code"] == "NOT_FOUND"
        # One rendering per distinct document and variables, however many subscribers.
        assert FRAMES.renders - before == 3


async def test_shared_renderings_reach_only_their_owner(secure_settings: Settings) -> None:
    alice_key = await make_key(secure_settings, "alice")
    bob_key = await make_key(secure_settings, "bob")
    async with _two(secure_settings, alice_key, bob_key) as (runtime, alice, bob):
        runtime.events.dispatch(JobEvent(job_id="bobs", status=JobStatus.RUNNING, owner="bob"))
        runtime.events.dispatch(
            JobEvent(job_id="alices", status=JobStatus.SUCCEEDED, owner="alice")
        )
        got_alice = (await _recv(alice))["payload"]["data"]["myJobUpdates"]
        got_bob = (await _recv(bob))["payload"]["data"]["myJobUpdates"]
        assert got_alice == {"jobId": "alices", "status": "SUCCEEDED"}
        assert got_bob == {"jobId": "bobs", "status": "RUNNING"}
        # Nothing else is waiting on either socket.
        runtime.events.dispatch(JobEvent(job_id="end", status=JobStatus.FAILED, owner="alice"))
        runtime.events.dispatch(JobEvent(job_id="end", status=JobStatus.FAILED, owner="bob"))
        for ws in (alice, bob):
            assert (await _recv(ws))["payload"]["data"]["myJobUpdates"]["jobId"] == "end"


async def test_a_revoked_key_gets_no_more_shared_events(secure_settings: Settings) -> None:
    settings = secure_settings.model_copy(update={"key_recheck_s": 0.2})
    alice_key = await make_key(settings, "alice")
    other_key = await make_key(settings, "alice-2", owner="alice")
    async with _two(settings, alice_key, other_key) as (runtime, revoked, kept):
        runtime.events.dispatch(JobEvent(job_id="a", status=JobStatus.RUNNING, owner="alice"))
        for ws in (revoked, kept):
            assert (await _recv(ws))["payload"]["data"]["myJobUpdates"]["jobId"] == "a"
        await revoke_key(settings, "alice")
        # The re-check ends the revoked key's stream, event or not; the other key of the
        # same owner keeps hearing its events.
        message = await _recv(revoked)
        assert message["type"] == "next", message
        assert message["payload"]["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        assert await _recv(revoked) == {"id": "1", "type": "complete"}
        runtime.events.dispatch(JobEvent(job_id="b", status=JobStatus.RUNNING, owner="alice"))
        assert (await _recv(kept))["payload"]["data"]["myJobUpdates"]["jobId"] == "b"
        await until(lambda: runtime.events.subscriber_count() == 1)


async def test_a_burst_goes_straight_to_the_sockets_in_order(secure_settings: Settings) -> None:
    """With nothing waiting and the key fresh, the relay writes each event to the socket
    itself (no task wakes); every subscriber still hears every event, in order."""
    key = await make_key(secure_settings, "alice")
    async with _two(secure_settings, key, key) as (runtime, first, second):
        before = FRAMES.direct
        for n in range(30):
            runtime.events.dispatch(
                JobEvent(job_id=f"j{n}", status=JobStatus.RUNNING, owner="alice")
            )
        for ws in (first, second):
            got = [(await _recv(ws))["payload"]["data"]["myJobUpdates"]["jobId"] for _ in range(30)]
            assert got == [f"j{n}" for n in range(30)]
        assert FRAMES.direct - before == 60


async def test_a_client_that_lags_gets_every_event_in_order(secure_settings: Settings) -> None:
    """A subscriber that stops reading fills its socket: the direct path then queues events
    for the subscriber's task, whose ASGI send waits for the client. Nothing is lost or
    reordered, and the server's buffer does not grow without bound."""
    key = await make_key(secure_settings, "alice")
    message = "x" * 400_000
    count = 200  # 80 MB: far beyond the socket buffers (up to 36 MB) and uvicorn's 64 KiB
    query = "subscription { myJobUpdates { jobId message } }"
    async with (
        serving_app(secure_settings) as (base, app),
        _subscribed(base, key, query) as lagging,
    ):
        runtime: Runtime = app.state.runtime
        await until(lambda: runtime.events.subscriber_count() == 1)
        lagging.transport.pause_reading()  # the client stops reading its socket
        before = FRAMES.direct
        for n in range(count):
            runtime.events.dispatch(
                JobEvent(job_id=f"j{n}", status=JobStatus.RUNNING, message=message, owner="alice")
            )
            await asyncio.sleep(0)  # the loop writes, and finds the socket full
        assert FRAMES.direct - before < count
        lagging.transport.resume_reading()
        for n in range(count):
            got = (await _recv(lagging))["payload"]["data"]["myJobUpdates"]
            assert got == {"jobId": f"j{n}", "message": message}
