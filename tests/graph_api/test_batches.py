"""submitBatch, cancelBatch, batch(es) and batchUpdates against real RabbitMQ, SQLite, Ray."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_client import as_key, codes, gql, make_key, running, serving, uploaded
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from bridge.service import Bridge
from graph_api.runtime import Runtime
from jobs.db import repository as repo
from jobs.errors import ProcessingFailed
from jobs.settings import Settings
from jobs.states import JobStatus
from jobs.store import batch_state
from tests.conftest import sine, write_wav

SUBMIT = """
mutation($input: BatchInput!) {
  submitBatch(input: $input) { id status progress album createdAt jobs { id status input { id } } }
}
"""
BATCH = """
query($id: ID!) {
  batch(id: $id) { id status progress finishedAt jobs { id status output { id } } }
}
"""
CANCEL = "mutation($id: ID!) { cancelBatch(id: $id) { id status jobs { status } } }"
GAIN = [{"gain": {"db": -1}}]


async def _files(client: httpx.AsyncClient, tmp_path: Path, n: int) -> list[str]:
    ids = []
    for i in range(n):
        path = write_wav(tmp_path / f"f{i}.wav", sine(300.0 + 100 * i, 0.5))
        ids.append((await uploaded(client, path))["id"])
    return ids


async def _batch(client: httpx.AsyncClient, **batch_input: Any) -> dict[str, Any]:
    body = await gql(client, SUBMIT, {"input": batch_input})
    assert "errors" not in body, body
    batch: dict[str, Any] = body["data"]["submitBatch"]
    return batch


async def _ended(client: httpx.AsyncClient, batch_id: str) -> dict[str, Any]:
    async with asyncio.timeout(120):
        while True:
            batch: dict[str, Any] = (await gql(client, BATCH, {"id": batch_id}))["data"]["batch"]
            if batch["status"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
                return batch
            await asyncio.sleep(0.05)


@pytest.mark.parametrize(
    "counts,expected",
    [
        ({JobStatus.QUEUED: 3}, JobStatus.QUEUED),
        ({JobStatus.QUEUED: 2, JobStatus.SUCCEEDED: 1}, JobStatus.RUNNING),
        ({JobStatus.RUNNING: 1, JobStatus.FAILED: 1}, JobStatus.RUNNING),
        ({JobStatus.SUCCEEDED: 3}, JobStatus.SUCCEEDED),
        ({JobStatus.SUCCEEDED: 2, JobStatus.FAILED: 1}, JobStatus.FAILED),
        ({JobStatus.CANCELLED: 1, JobStatus.FAILED: 1}, JobStatus.FAILED),
        ({JobStatus.SUCCEEDED: 1, JobStatus.CANCELLED: 2}, JobStatus.CANCELLED),
    ],
)
def test_batch_status_follows_its_jobs(counts: dict[JobStatus, int], expected: JobStatus) -> None:
    assert batch_state(counts) is expected


async def test_batch_runs_every_file_and_succeeds(
    client: httpx.AsyncClient, bridge: Bridge, tmp_path: Path
) -> None:
    files = await _files(client, tmp_path, 3)
    batch = await _batch(client, fileIds=files, effects=GAIN)
    assert batch["status"] == "QUEUED" and batch["album"] is False
    assert [j["input"]["id"] for j in batch["jobs"]] == files  # in the order asked for
    done = await _ended(client, batch["id"])
    assert done["status"] == "SUCCEEDED"
    assert done["progress"] == 1.0 and done["finishedAt"] is not None
    assert all(j["status"] == "SUCCEEDED" and j["output"] for j in done["jobs"])
    listed = await gql(client, "{ batches(first: 5) { edges { node { id status } } } }")
    assert listed["data"]["batches"]["edges"] == [
        {"node": {"id": batch["id"], "status": "SUCCEEDED"}}
    ]


async def test_a_failed_job_fails_the_batch_once_the_others_ended(
    client: httpx.AsyncClient, runtime: Runtime, tmp_path: Path
) -> None:
    files = await _files(client, tmp_path, 3)
    batch = await _batch(client, fileIds=files, effects=GAIN)
    first, *rest = [j["id"] for j in batch["jobs"]]
    await runtime.store.fail(first, ProcessingFailed("broken"))
    # One failed, two still queued: the batch is under way, and waits for them.
    assert (await gql(client, BATCH, {"id": batch["id"]}))["data"]["batch"]["status"] == "RUNNING"
    cancelled = (await gql(client, CANCEL, {"id": batch["id"]}))["data"]["cancelBatch"]
    assert [j["status"] for j in cancelled["jobs"]] == ["FAILED", "CANCELLED", "CANCELLED"]
    assert cancelled["status"] == "FAILED"
    again = await gql(client, CANCEL, {"id": batch["id"]})
    assert codes(again) == ["CONFLICT"]
    # Each job change wrote its batch's event to the outbox, in its own transaction.
    async with runtime.db.transaction() as session:
        stored = await repo.get_batch(session, batch["id"])
    assert stored.status is JobStatus.FAILED and stored.finished_at is not None
    assert len(rest) == 2


async def test_cancel_batch_cancels_every_job(client: httpx.AsyncClient, tmp_path: Path) -> None:
    files = await _files(client, tmp_path, 2)
    batch = await _batch(client, fileIds=files, effects=GAIN)
    cancelled = (await gql(client, CANCEL, {"id": batch["id"]}))["data"]["cancelBatch"]
    assert cancelled["status"] == "CANCELLED"
    assert [j["status"] for j in cancelled["jobs"]] == ["CANCELLED", "CANCELLED"]


@pytest.mark.parametrize(
    "change,code",
    [
        ({"fileIds": []}, "BAD_INPUT"),
        ({"fileIds": ["a"] * 4}, "BAD_INPUT"),
        ({"effects": None}, "BAD_INPUT"),
        ({"album": True}, "BAD_INPUT"),  # no loudness step
        ({"webhookUrl": "ftp://example.com/x"}, "BAD_INPUT"),
        ({"fileIds": ["no-such-file"]}, "NOT_FOUND"),
    ],
)
async def test_bad_batches_are_refused_and_write_nothing(
    settings: Settings, tmp_path: Path, change: dict[str, Any], code: str
) -> None:
    settings = settings.model_copy(update={"max_batch_files": 3})
    async with running(settings) as (app, client):
        files = await _files(client, tmp_path, 2)
        body = await gql(client, SUBMIT, {"input": {"fileIds": files, "effects": GAIN} | change})
        assert codes(body) == [code], body
        runtime: Runtime = app.state.runtime
        async with runtime.db.transaction() as session:
            assert (await repo.list_batches(session))[0] == []
            assert (await repo.list_jobs(session))[0] == []


async def test_batches_are_their_owners_only(secure_settings: Settings, tmp_path: Path) -> None:
    alice = await make_key(secure_settings, "alice")
    bob = await make_key(secure_settings, "bob")
    async with running(secure_settings) as (app, _):
        async with as_key(app, alice) as client:
            files = await _files(client, tmp_path, 2)
            batch = await _batch(client, fileIds=files, effects=GAIN)
        async with as_key(app, bob) as client:
            assert (await gql(client, BATCH, {"id": batch["id"]}))["data"]["batch"] is None
            assert codes(await gql(client, CANCEL, {"id": batch["id"]})) == ["NOT_FOUND"]
            listed = await gql(client, "{ batches { edges { node { id } } } }")
            assert listed["data"]["batches"]["edges"] == []
            # Alice's files are not Bob's to batch.
            body = await gql(client, SUBMIT, {"input": {"fileIds": files, "effects": GAIN}})
            assert codes(body) == ["NOT_FOUND"]


async def test_batches_page_newest_first(client: httpx.AsyncClient, tmp_path: Path) -> None:
    files = await _files(client, tmp_path, 1)
    made = [(await _batch(client, fileIds=files, effects=GAIN))["id"] for _ in range(3)]
    query = (
        "query($a: String) { batches(first: 2, after: $a) { edges { node { id } } "
        "pageInfo { hasNextPage endCursor } } }"
    )
    first = (await gql(client, query))["data"]["batches"]
    assert [e["node"]["id"] for e in first["edges"]] == made[::-1][:2]
    assert first["pageInfo"]["hasNextPage"] is True
    rest = (await gql(client, query, {"a": first["pageInfo"]["endCursor"]}))["data"]["batches"]
    assert [e["node"]["id"] for e in rest["edges"]] == made[:1]
    assert rest["pageInfo"]["hasNextPage"] is False


async def test_batch_updates_subscription(settings: Settings, tmp_path: Path) -> None:
    updates = (
        "subscription($id: ID!) { batchUpdates(batchId: $id) "
        "{ batchId status progress done total batch { id } } }"
    )
    async with (
        serving(settings) as base,
        httpx.AsyncClient(base_url=f"http://{base}") as client,
    ):
        files = await _files(client, tmp_path, 2)
        batch = await _batch(client, fileIds=files, effects=GAIN)
        async with connect(
            f"ws://{base}/graphql", subprotocols=[Subprotocol("graphql-transport-ws")]
        ) as ws:
            await ws.send(json.dumps({"type": "connection_init"}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            payload = {"query": updates, "variables": {"id": batch["id"]}}
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
            seen: list[dict[str, Any]] = []

            async def receive() -> dict[str, Any]:
                message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 15))
                return message

            first = await receive()
            seen.append(first["payload"]["data"]["batchUpdates"])
            await gql(client, CANCEL, {"id": batch["id"]})
            while (message := await receive())["type"] == "next":
                seen.append(message["payload"]["data"]["batchUpdates"])
            assert message["type"] == "complete"
    assert seen[0] == {
        "batchId": batch["id"],
        "status": "QUEUED",
        "progress": 0.0,
        "done": 0,
        "total": 2,
        "batch": {"id": batch["id"]},
    }
    assert [(u["status"], u["done"]) for u in seen[1:]] == [("RUNNING", 1), ("CANCELLED", 2)]
    assert seen[-1]["progress"] == 1.0


async def test_a_batch_webhook_needs_an_allowed_address(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    files = await _files(client, tmp_path, 1)
    body = await gql(
        client,
        SUBMIT,
        {"input": {"fileIds": files, "effects": GAIN, "webhookUrl": "http://127.0.0.1/x"}},
    )
    assert codes(body) == ["BAD_INPUT"]
    assert "AUDIO_ENGINE_ALLOW_PRIVATE_URLS" in body["errors"][0]["message"]
