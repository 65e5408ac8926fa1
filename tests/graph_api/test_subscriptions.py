"""jobUpdates over a real websocket (graphql-transport-ws), and the event relay fan-out."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_client import gql, running, serving, uploaded
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from graph_api.runtime import Runtime
from jobs.broker import Broker
from jobs.contract import JobEvent
from jobs.settings import Settings
from jobs.states import JobStatus

UPDATES = """
subscription($id: ID!) {
  jobUpdates(jobId: $id) { jobId status progress message job { id input { id } } }
}
"""


async def receive(ws: ClientConnection) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 15))
    return message


@asynccontextmanager
async def subscribed(base: str, job_id: str) -> AsyncIterator[ClientConnection]:
    async with connect(
        f"ws://{base}/graphql", subprotocols=[Subprotocol("graphql-transport-ws")]
    ) as ws:
        await ws.send(json.dumps({"type": "connection_init"}))
        assert (await receive(ws))["type"] == "connection_ack"
        payload = {"query": UPDATES, "variables": {"id": job_id}}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        yield ws


async def queued_job(base: str, wav_file: Path) -> tuple[str, str]:
    async with httpx.AsyncClient(base_url=f"http://{base}") as client:
        file = await uploaded(client, wav_file)
        body = await gql(
            client,
            "mutation($i: JobInput!) { submitJob(input: $i) { id } }",
            {"i": {"fileId": file["id"], "effects": [{"gain": {"db": -1}}]}},
        )
    return body["data"]["submitJob"]["id"], file["id"]


async def test_job_updates_current_state_then_events_then_complete(
    settings: Settings, wav_file: Path
) -> None:
    async with serving(settings) as base:
        job_id, file_id = await queued_job(base, wav_file)
        broker = await Broker.connect(settings)
        try:
            async with subscribed(base, job_id) as ws:
                first = await receive(ws)
                assert first["type"] == "next"
                update = first["payload"]["data"]["jobUpdates"]
                assert (update["jobId"], update["status"], update["progress"]) == (
                    job_id,
                    "QUEUED",
                    0.0,
                )
                assert update["job"] == {"id": job_id, "input": {"id": file_id}}

                for version, status, progress in [
                    (1, JobStatus.RUNNING, 0.5),
                    (1, JobStatus.RUNNING, 0.25),  # stale: must be dropped
                    (2, JobStatus.QUEUED, 0.0),  # handed back: a newer version
                    (1, JobStatus.RUNNING, 0.75),  # a late copy of the first run: dropped
                    (3, JobStatus.RUNNING, 0.0),
                    (4, JobStatus.SUCCEEDED, 1.0),
                ]:
                    event = JobEvent(
                        job_id=job_id, status=status, progress=progress, version=version
                    )
                    await broker.publish_event(event.encode())
                seen = [(await receive(ws))["payload"]["data"]["jobUpdates"] for _ in range(3)]
                assert [(u["status"], u["progress"]) for u in seen] == [
                    ("RUNNING", 0.5),
                    ("QUEUED", 0.0),
                    ("RUNNING", 0.0),
                ]
                done = (await receive(ws))["payload"]["data"]["jobUpdates"]
                assert (done["status"], done["progress"]) == ("SUCCEEDED", 1.0)
                assert await receive(ws) == {"id": "1", "type": "complete"}
        finally:
            await broker.close()


async def test_job_updates_unknown_job_is_not_found(settings: Settings) -> None:
    async with serving(settings) as base, subscribed(base, "missing") as ws:
        message = await receive(ws)
        errors = message["payload"]["errors"] if message["type"] == "next" else message["payload"]
        assert errors[0]["extensions"]["code"] == "NOT_FOUND"


async def test_every_app_instance_relays_every_event(settings: Settings) -> None:
    async with running(settings) as (app_a, _), running(settings) as (app_b, _):
        a: Runtime = app_a.state.runtime
        b: Runtime = app_b.state.runtime
        assert a.events.queue_name != b.events.queue_name
        broker = await Broker.connect(settings)
        try:
            with a.events.subscribe("job-1") as qa, b.events.subscribe("job-1") as qb:
                event = JobEvent(job_id="job-1", status=JobStatus.RUNNING, progress=0.1)
                await broker.publish_event(event.encode())
                got_a = await asyncio.wait_for(qa.get(), 15)
                got_b = await asyncio.wait_for(qb.get(), 15)
        finally:
            await broker.close()
    assert got_a == event
    assert got_b == event
    assert a.events.subscriber_count("job-1") == 0


async def test_cancelling_a_queued_job_ends_its_subscription(
    settings: Settings, wav_file: Path
) -> None:
    async with serving(settings) as base:
        job_id, _ = await queued_job(base, wav_file)
        async with subscribed(base, job_id) as ws:
            assert (await receive(ws))["payload"]["data"]["jobUpdates"]["status"] == "QUEUED"
            async with httpx.AsyncClient(base_url=f"http://{base}") as client:
                body = await gql(
                    client, "mutation($id: ID!) { cancelJob(id: $id) { status } }", {"id": job_id}
                )
            assert body["data"]["cancelJob"]["status"] == "CANCELLED"
            update = (await receive(ws))["payload"]["data"]["jobUpdates"]
            assert (update["status"], update["job"]["id"]) == ("CANCELLED", job_id)
            assert (await receive(ws))["type"] == "complete"


async def test_legacy_graphql_ws_protocol_is_refused_at_connect(
    secure_settings: Settings,
) -> None:
    """Only graphql-transport-ws is spoken: a legacy `graphql-ws` client is told so with
    close code 4406 before it can send anything, instead of a masked internal error."""
    async with serving(secure_settings) as base:
        async with connect(f"ws://{base}/graphql", subprotocols=[Subprotocol("graphql-ws")]) as ws:
            assert ws.subprotocol is None
            with pytest.raises(ConnectionClosed) as closed:
                await ws.send(json.dumps({"type": "connection_init"}))
                await asyncio.wait_for(ws.recv(), 10)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4406
        assert "Subprotocol not acceptable" in closed.value.rcvd.reason
