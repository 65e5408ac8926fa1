"""Files and jobs belong to their key's owner: every entry point answers NOT_FOUND (or null,
or 404) for another owner's ids, exactly as for unknown ones; admin keys see everything."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_client import (
    as_key,
    codes,
    gql,
    make_key,
    revoke_key,
    running,
    serving,
    serving_app,
    until,
    uploaded,
)
from fastapi import FastAPI
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from graph_api.runtime import Runtime
from jobs.contract import JobEvent
from jobs.db import repository as repo
from jobs.settings import Settings
from jobs.states import JobStatus
from tests.jobs.job_records import output_file, run_to_success

SUBMIT = "mutation($i: JobInput!) { submitJob(input: $i) { id status } }"


@dataclass
class World:
    app: FastAPI
    runtime: Runtime
    alice: httpx.AsyncClient
    bob: httpx.AsyncClient
    admin: httpx.AsyncClient
    keys: dict[str, str]
    file: dict[str, Any]
    job: dict[str, Any]


@asynccontextmanager
async def world(settings: Settings, wav_file: Path) -> AsyncIterator[World]:
    keys = {
        "alice": await make_key(settings, "alice"),
        "bob": await make_key(settings, "bob"),
        "root": await make_key(settings, "root", admin=True),
    }
    async with (
        running(settings) as (app, _),
        as_key(app, keys["alice"]) as alice,
        as_key(app, keys["bob"]) as bob,
        as_key(app, keys["root"]) as admin,
    ):
        file = await uploaded(alice, wav_file)
        body = await gql(alice, SUBMIT, {"i": {"fileId": file["id"], "effects": []}})
        yield World(
            app, app.state.runtime, alice, bob, admin, keys, file, body["data"]["submitJob"]
        )


@pytest.fixture
async def w(secure_settings: Settings, wav_file: Path) -> AsyncIterator[World]:
    async with world(secure_settings, wav_file) as value:
        yield value


async def test_owner_columns_are_set(w: World) -> None:
    async with w.runtime.db.transaction() as session:
        assert (await repo.get_files(session, [w.file["id"]]))[w.file["id"]].owner == "alice"
        assert (await repo.get_job(session, w.job["id"])).owner == "alice"


async def test_queries(w: World) -> None:
    job_q = "query($id: ID!) { job(id: $id) { id input { id } } }"
    file_q = "query($id: ID!) { file(id: $id) { id } }"
    jobs_q = "{ jobs { edges { node { id } } } }"
    assert (await gql(w.alice, job_q, {"id": w.job["id"]}))["data"]["job"]["id"] == w.job["id"]
    assert (await gql(w.bob, job_q, {"id": w.job["id"]}))["data"]["job"] is None
    assert (await gql(w.bob, job_q, {"id": "unknown"}))["data"]["job"] is None
    assert (await gql(w.admin, job_q, {"id": w.job["id"]}))["data"]["job"] is not None
    assert (await gql(w.alice, file_q, {"id": w.file["id"]}))["data"]["file"] is not None
    assert (await gql(w.bob, file_q, {"id": w.file["id"]}))["data"]["file"] is None
    assert (await gql(w.admin, file_q, {"id": w.file["id"]}))["data"]["file"] is not None
    assert len((await gql(w.alice, jobs_q))["data"]["jobs"]["edges"]) == 1
    assert (await gql(w.bob, jobs_q))["data"]["jobs"]["edges"] == []
    assert len((await gql(w.admin, jobs_q))["data"]["jobs"]["edges"]) == 1


async def test_mutations(w: World, wav_file: Path) -> None:
    fid, jid = w.file["id"], w.job["id"]
    bob_file = await uploaded(w.bob, wav_file)
    refused = [
        (SUBMIT, {"i": {"fileId": fid, "effects": []}}),
        (  # alice's file as bob's impulse response
            SUBMIT,
            {"i": {"fileId": bob_file["id"], "effects": [{"reverb": {"impulse": fid}}]}},
        ),
        ("mutation($id: ID!) { cancelJob(id: $id) { id } }", {"id": jid}),
        ("mutation($id: ID!) { retryJob(id: $id) { id } }", {"id": jid}),
        ("mutation($id: ID!) { deleteFile(id: $id) }", {"id": fid}),
    ]
    for query, variables in refused:
        body = await gql(w.bob, query, variables)
        # An impulse is a parameter: refused as BAD_INPUT, with the words an unknown one gets.
        impulse = "impulse" in json.dumps(variables)
        assert codes(body) == ["BAD_INPUT" if impulse else "NOT_FOUND"], (query, body)
        assert "alice" not in json.dumps(body)
        if impulse:
            assert "neither a preset" in body["errors"][0]["message"]
    # The same ids are fine for their owner and for an admin.
    ok = await gql(
        w.alice, SUBMIT, {"i": {"fileId": fid, "effects": [{"reverb": {"impulse": fid}}]}}
    )
    assert ok["data"]["submitJob"]["status"] == "QUEUED", ok
    cancelled = await gql(
        w.admin, "mutation($id: ID!) { cancelJob(id: $id) { status } }", {"id": jid}
    )
    assert cancelled["data"]["cancelJob"]["status"] == "CANCELLED"
    retried = await gql(w.admin, "mutation($id: ID!) { retryJob(id: $id) { id } }", {"id": jid})
    async with w.runtime.db.transaction() as session:
        new = await repo.get_job(session, retried["data"]["retryJob"]["id"])
    assert new.owner == "alice"  # a retry stays the original owner's


SAVE_PRESET = (
    "mutation($n: String!, $e: [EffectInput!]!) { savePreset(name: $n, effects: $e) { name } }"
)


async def test_save_preset_refuses_unreadable_impulses_and_empty_chains(w: World) -> None:
    """Saving is refused like using would be: another owner's (or an unknown) impulse file
    is BAD_INPUT naming the field, in the same words, and so is an empty chain."""
    alices = [{"reverb": {"impulse": w.file["id"]}}]
    for effects in (alices, [{"gain": {"db": -1}}, {"reverb": {"impulse": "nope"}}]):
        body = await gql(w.bob, SAVE_PRESET, {"n": "stolen", "e": effects})
        assert codes(body) == ["BAD_INPUT"], body
        assert body["errors"][0]["message"].startswith("reverb.impulse "), body
        assert "is neither a preset" in body["errors"][0]["message"], body
        assert "alice" not in json.dumps(body)
    empty = await gql(w.alice, SAVE_PRESET, {"n": "nothing", "e": []})
    assert codes(empty) == ["BAD_INPUT"] and "effects" in empty["errors"][0]["message"]
    async with w.runtime.db.transaction() as session:
        assert await repo.list_presets(session, "bob") == []
        assert await repo.list_presets(session, "alice") == []
    # Her own file is fine for alice, and so is any file for an admin.
    for client in (w.alice, w.admin):
        saved = await gql(client, SAVE_PRESET, {"n": "room", "e": alices})
        assert saved["data"]["savePreset"]["name"] == "room", saved


async def test_rest_download(w: World) -> None:
    url = w.file["downloadUrl"]
    assert (await w.alice.get(url)).status_code == 200
    assert (await w.admin.get(url)).status_code == 200
    foreign = await w.bob.get(url)
    unknown = await w.bob.get("/files/0123456789abcdef0123456789abcdef")
    assert foreign.status_code == unknown.status_code == 404
    assert foreign.json()["code"] == unknown.json()["code"] == "NOT_FOUND"


async def test_output_file_belongs_to_the_jobs_owner(w: World, wav_file: Path) -> None:
    """Even when the output row carries no owner, the job's owner may read it."""
    key = "out/x.wav"
    w.runtime.storage.path("out").mkdir(parents=True, exist_ok=True)
    w.runtime.storage.path(key).write_bytes(wav_file.read_bytes())
    output = output_file(None, key)
    await run_to_success(w.runtime.store, w.job["id"], output)
    q = "query($id: ID!) { file(id: $id) { id } job(id: $id) { id } }"
    assert (await gql(w.alice, q, {"id": output.id}))["data"]["file"] == {"id": output.id}
    assert (await gql(w.bob, q, {"id": output.id}))["data"]["file"] is None
    assert (await w.alice.get(f"/files/{output.id}")).status_code == 200
    assert (await w.bob.get(f"/files/{output.id}")).status_code == 404
    job_q = "query($id: ID!) { job(id: $id) { output { id } } }"
    assert (await gql(w.alice, job_q, {"id": w.job["id"]}))["data"]["job"]["output"] == {
        "id": output.id
    }


async def _recv(ws: Any) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 15))
    return message


@asynccontextmanager
async def _subscribe(base: str, key: str, query: str, variables: dict[str, Any]) -> Any:
    async with connect(
        f"ws://{base}/graphql", subprotocols=[Subprotocol("graphql-transport-ws")]
    ) as ws:
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {key}"}})
        )
        assert (await _recv(ws))["type"] == "connection_ack"
        payload = {"query": query, "variables": variables}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        yield ws


async def _queued_as(base: str, key: str, wav_file: Path) -> str:
    """Upload `wav_file` and queue an empty chain over it with `key`; returns the job id."""
    async with httpx.AsyncClient(
        base_url=f"http://{base}", headers={"Authorization": f"Bearer {key}"}
    ) as client:
        file = await uploaded(client, wav_file)
        body = await gql(client, SUBMIT, {"i": {"fileId": file["id"], "effects": []}})
    return str(body["data"]["submitJob"]["id"])


async def test_subscriptions(secure_settings: Settings, wav_file: Path) -> None:
    keys = {
        "alice": await make_key(secure_settings, "alice"),
        "bob": await make_key(secure_settings, "bob"),
        "root": await make_key(secure_settings, "root", admin=True),
    }
    updates = "subscription($id: ID!) { jobUpdates(jobId: $id) { jobId status } }"
    mine = "subscription { myJobUpdates { jobId status job { id } } }"
    async with serving_app(secure_settings) as (base, app):
        job_id = await _queued_as(base, keys["alice"], wav_file)
        async with _subscribe(base, keys["bob"], updates, {"id": job_id}) as ws:
            message = await _recv(ws)
            errors = (
                message["payload"]["errors"] if message["type"] == "next" else message["payload"]
            )
            assert errors[0]["extensions"]["code"] == "NOT_FOUND"
        async with (
            _subscribe(base, keys["alice"], mine, {}) as ws_alice,
            _subscribe(base, keys["bob"], mine, {}) as ws_bob,
            _subscribe(base, keys["root"], mine, {}) as ws_root,
        ):
            await until(lambda: app.state.runtime.events.subscriber_count() == 3)
            async with httpx.AsyncClient(
                base_url=f"http://{base}", headers={"Authorization": f"Bearer {keys['bob']}"}
            ) as bob:
                bob_file = await uploaded(bob, wav_file)
                bob_job = (
                    await gql(bob, SUBMIT, {"i": {"fileId": bob_file["id"], "effects": []}})
                )["data"]["submitJob"]["id"]
                await gql(bob, "mutation($id: ID!) { cancelJob(id: $id) { id } }", {"id": bob_job})
            async with httpx.AsyncClient(
                base_url=f"http://{base}", headers={"Authorization": f"Bearer {keys['alice']}"}
            ) as alice:
                await gql(alice, "mutation($id: ID!) { cancelJob(id: $id) { id } }", {"id": job_id})
            got_alice = (await _recv(ws_alice))["payload"]["data"]["myJobUpdates"]
            got_bob = (await _recv(ws_bob))["payload"]["data"]["myJobUpdates"]
            got_root = [(await _recv(ws_root))["payload"]["data"]["myJobUpdates"] for _ in "ab"]
    assert (got_alice["jobId"], got_alice["status"], got_alice["job"]["id"]) == (
        job_id,
        "CANCELLED",
        job_id,
    )
    assert (got_bob["jobId"], got_bob["status"]) == (bob_job, "CANCELLED")
    assert [e["jobId"] for e in got_root] == [bob_job, job_id]


async def test_event_relay_feeds_my_updates_only_with_my_jobs(
    secure_settings: Settings, wav_file: Path
) -> None:
    """Events the broker relays (the bridge's) reach myJobUpdates filtered by owner."""
    async with world(secure_settings, wav_file) as w:
        with w.runtime.events.subscribe_all() as queue:
            w.runtime.events.dispatch(
                JobEvent(job_id=w.job["id"], status=JobStatus.RUNNING, owner="alice")
            )
            assert (await asyncio.wait_for(queue.get(), 5)).job_id == w.job["id"]


async def test_a_revoked_key_ends_its_open_subscriptions(
    secure_settings: Settings, wav_file: Path
) -> None:
    """Revoked while subscribed: the next re-check (here every 0.2 s) ends both kinds of
    subscription with UNAUTHENTICATED, with or without an event coming."""
    settings = secure_settings.model_copy(update={"key_recheck_s": 0.2})
    key = await make_key(settings, "alice")
    async with serving(settings) as base:
        job_id = await _queued_as(base, key, wav_file)
        updates = "subscription($id: ID!) { jobUpdates(jobId: $id) { jobId status } }"
        mine = "subscription { myJobUpdates { jobId status } }"
        async with (
            _subscribe(base, key, updates, {"id": job_id}) as ws_job,
            _subscribe(base, key, mine, {}) as ws_mine,
        ):
            first = (await _recv(ws_job))["payload"]["data"]["jobUpdates"]
            assert first["status"] == "QUEUED"
            await revoke_key(settings, "alice")
            for ws in (ws_job, ws_mine):
                message = await _recv(ws)
                errors = message["payload"].get("errors") or message["payload"]
                assert errors[0]["extensions"]["code"] == "UNAUTHENTICATED", message
                assert "revoked" in errors[0]["message"]
