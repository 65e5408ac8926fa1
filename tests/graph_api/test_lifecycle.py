"""retryJob, deleteFile, the jobs filter, the per-owner quota, and presets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from api_client import as_key, codes, gql, make_key, running, uploaded

from graph_api.runtime import Runtime
from jobs.db import repository as repo
from jobs.errors import ProcessingFailed
from jobs.settings import Settings
from jobs.states import JobStatus
from jobs.store import NewJob
from tests.jobs.job_records import run_to_success

SUBMIT = "mutation($i: JobInput!) { submitJob(input: $i) { id status effects } }"
RETRY = "mutation($id: ID!) { retryJob(id: $id) { id status effects outputFormat } }"
CANCEL = "mutation($id: ID!) { cancelJob(id: $id) { id status } }"
DELETE = "mutation($id: ID!) { deleteFile(id: $id) }"


async def submit(client: httpx.AsyncClient, **job_input: Any) -> dict[str, Any]:
    return await gql(client, SUBMIT, {"i": job_input})


async def test_retry_finished_jobs_only(
    client: httpx.AsyncClient, runtime: Runtime, wav_file: Path
) -> None:
    file = await uploaded(client, wav_file)
    chain = [{"gain": {"db": -3}}, {"fade": {"inMs": 5}}]
    job = (
        await submit(
            client, fileId=file["id"], effects=chain, output={"format": "FLAC", "subtype": "PCM_16"}
        )
    )["data"]["submitJob"]
    assert codes(await gql(client, RETRY, {"id": job["id"]})) == ["CONFLICT"]  # still QUEUED
    for status in (JobStatus.CANCELLED, JobStatus.FAILED, JobStatus.SUCCEEDED):
        new = NewJob(repo.new_id(), file["id"], job["effects"], "FLAC", "PCM_16", b"m")
        src = await runtime.store.submit(new, most_unfinished=100)
        if status is JobStatus.CANCELLED:
            await runtime.store.cancel(src.id)
        elif status is JobStatus.FAILED:
            await runtime.store.start(src.id, "dsp-test")
            await runtime.store.fail(src.id, ProcessingFailed("x"))
        else:
            await run_to_success(runtime.store, src.id)
        body = await gql(client, RETRY, {"id": src.id})
        new = body["data"]["retryJob"]
        assert new["id"] != src.id and new["status"] == "QUEUED"
        assert new["effects"] == job["effects"] and new["outputFormat"] == "FLAC"
    assert codes(await gql(client, RETRY, {"id": "missing"})) == ["NOT_FOUND"]


async def test_delete_file(client: httpx.AsyncClient, runtime: Runtime, wav_file: Path) -> None:
    file = await uploaded(client, wav_file)
    ir = await uploaded(client, wav_file)
    job = (await submit(client, fileId=file["id"], effects=[{"reverb": {"impulse": ir["id"]}}]))[
        "data"
    ]["submitJob"]
    for busy in (file, ir):  # input and impulse of a QUEUED job
        body = await gql(client, DELETE, {"id": busy["id"]})
        assert codes(body) == ["CONFLICT"] and job["id"] in body["errors"][0]["message"]
    await runtime.store.start(job["id"], "dsp-test")
    assert codes(await gql(client, DELETE, {"id": ir["id"]})) == ["CONFLICT"]
    await runtime.store.fail(job["id"], ProcessingFailed("x"))

    assert (await gql(client, DELETE, {"id": file["id"]}))["data"]["deleteFile"] is True
    assert not runtime.storage.exists(f"in/{file['id']}.wav")
    assert (await client.get(file["downloadUrl"])).status_code == 404
    q = "query($id: ID!) { file(id: $id) { id } }"
    assert (await gql(client, q, {"id": file["id"]}))["data"]["file"] is None
    assert codes(await gql(client, DELETE, {"id": file["id"]})) == ["NOT_FOUND"]
    # The job keeps its history, input metadata included.
    hq = "query($id: ID!) { job(id: $id) { status input { id filename } } }"
    history = (await gql(client, hq, {"id": job["id"]}))["data"]["job"]
    assert history == {"status": "FAILED", "input": {"id": file["id"], "filename": "tone.wav"}}
    # A deleted file cannot be used again, nor can a job on it be retried.
    assert codes(await submit(client, fileId=file["id"], effects=[])) == ["NOT_FOUND"]
    assert codes(await gql(client, RETRY, {"id": job["id"]})) == ["NOT_FOUND"]


async def test_jobs_filter_and_cursor(
    client: httpx.AsyncClient, runtime: Runtime, wav_file: Path
) -> None:
    file = await uploaded(client, wav_file)
    ids = [
        (await submit(client, fileId=file["id"], effects=[]))["data"]["submitJob"]["id"]
        for _ in range(5)
    ]
    for job_id in ids[:3]:
        await gql(client, CANCEL, {"id": job_id})
    q = """query($f: JobFilter, $after: String, $s: JobStatus) {
      jobs(filter: $f, first: 2, after: $after, status: $s) {
        edges { node { id status } } pageInfo { hasNextPage endCursor } } }"""
    seen: list[str] = []
    after = None
    while True:
        page = (await gql(client, q, {"f": {"status": "CANCELLED"}, "after": after}))["data"][
            "jobs"
        ]
        seen += [e["node"]["id"] for e in page["edges"]]
        assert all(e["node"]["status"] == "CANCELLED" for e in page["edges"])
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == ids[:3][::-1]
    queued = (await gql(client, q, {"s": "QUEUED"}))["data"]["jobs"]["edges"]
    assert [e["node"]["id"] for e in queued] == ids[3:][::-1]
    same = await gql(client, q, {"s": "QUEUED", "f": {"status": "QUEUED"}})
    assert len(same["data"]["jobs"]["edges"]) == 2
    assert codes(await gql(client, q, {"s": "QUEUED", "f": {"status": "FAILED"}})) == ["BAD_INPUT"]
    assert codes(await gql(client, q, {"after": "garbage!"})) == ["BAD_INPUT"]


async def test_queued_jobs_quota_per_owner(secure_settings: Settings, wav_file: Path) -> None:
    limited = secure_settings.model_copy(update={"max_queued_jobs_per_owner": 2})
    alice_key = await make_key(limited, "alice")
    bob_key = await make_key(limited, "bob")
    async with (
        running(limited) as (app, _),
        as_key(app, alice_key) as alice,
        as_key(app, bob_key) as bob,
    ):
        file = await uploaded(alice, wav_file)
        first = [
            (await submit(alice, fileId=file["id"], effects=[]))["data"]["submitJob"] for _ in "ab"
        ]
        body = await submit(alice, fileId=file["id"], effects=[])
        assert codes(body) == ["QUOTA_EXCEEDED"]
        assert "2" in body["errors"][0]["message"]
        # Another owner has a quota of their own.
        bob_file = await uploaded(bob, wav_file)
        assert "errors" not in await submit(bob, fileId=bob_file["id"], effects=[])
        # A finished job frees a place.
        await gql(alice, CANCEL, {"id": first[0]["id"]})
        assert "errors" not in await submit(alice, fileId=file["id"], effects=[])
        assert codes(await gql(alice, RETRY, {"id": first[0]["id"]})) == ["QUOTA_EXCEEDED"]


PRESETS = "{ presets { name effects } }"
SAVE = (
    "mutation($n: String!, $e: [EffectInput!]!) "
    "{ savePreset(name: $n, effects: $e) { name effects } }"
)


async def test_presets(client: httpx.AsyncClient, wav_file: Path) -> None:
    chain = [{"gain": {"db": -6}}, {"eq": {"bands": [{"kind": "LOWPASS", "frequency": 30000}]}}]
    saved = (await gql(client, SAVE, {"n": "bright", "e": chain}))["data"]["savePreset"]
    assert saved["name"] == "bright"
    assert saved["effects"][0] == {"gain": {"db": -6.0}}
    assert (await gql(client, PRESETS))["data"]["presets"] == [saved]

    # Saving again replaces the chain.
    again = await gql(client, SAVE, {"n": "bright", "e": [{"gain": {"db": -1}}]})
    assert again["data"]["savePreset"]["effects"] == [{"gain": {"db": -1.0}}]
    await gql(client, SAVE, {"n": "dark", "e": chain})
    assert [p["name"] for p in (await gql(client, PRESETS))["data"]["presets"]] == [
        "bright",
        "dark",
    ]

    file = await uploaded(client, wav_file)  # 48 kHz: 30 kHz is above Nyquist
    job = await submit(client, fileId=file["id"], preset="bright")
    assert job["data"]["submitJob"]["effects"] == [{"gain": {"db": -1.0}}]
    nyquist = await submit(client, fileId=file["id"], preset="dark")
    assert codes(nyquist) == ["BAD_INPUT"] and "Nyquist" in nyquist["errors"][0]["message"]
    assert codes(await submit(client, fileId=file["id"], preset="nope")) == ["NOT_FOUND"]
    both = await submit(client, fileId=file["id"], preset="bright", effects=[])
    assert codes(both) == ["BAD_INPUT"]
    assert codes(await submit(client, fileId=file["id"])) == ["BAD_INPUT"]

    delete = "mutation($n: String!) { deletePreset(name: $n) }"
    assert (await gql(client, delete, {"n": "dark"}))["data"]["deletePreset"] is True
    assert codes(await gql(client, delete, {"n": "dark"})) == ["NOT_FOUND"]


async def test_invalid_presets_are_refused(client: httpx.AsyncClient) -> None:
    assert codes(await gql(client, SAVE, {"n": "x", "e": [{"gain": {"db": 500}}]})) == ["BAD_INPUT"]
    assert codes(await gql(client, SAVE, {"n": "", "e": []})) == ["BAD_INPUT"]
    assert codes(await gql(client, SAVE, {"n": "a\x00b", "e": []})) == ["BAD_INPUT"]
    assert codes(await gql(client, SAVE, {"n": "x" * 101, "e": []})) == ["BAD_INPUT"]
    too_long = [{"gain": {"db": 0}}] * 33
    assert codes(await gql(client, SAVE, {"n": "long", "e": too_long})) == ["BAD_INPUT"]
    assert (await gql(client, PRESETS))["data"]["presets"] == []


async def test_presets_are_per_owner(secure_settings: Settings) -> None:
    alice_key = await make_key(secure_settings, "alice")
    bob_key = await make_key(secure_settings, "bob")
    async with (
        running(secure_settings) as (app, _),
        as_key(app, alice_key) as alice,
        as_key(app, bob_key) as bob,
    ):
        await gql(alice, SAVE, {"n": "mine", "e": [{"gain": {"db": 1}}]})
        await gql(bob, SAVE, {"n": "mine", "e": [{"gain": {"db": 2}}]})
        a = (await gql(alice, PRESETS))["data"]["presets"]
        b = (await gql(bob, PRESETS))["data"]["presets"]
        assert a[0]["effects"] == [{"gain": {"db": 1.0}}]
        assert b[0]["effects"] == [{"gain": {"db": 2.0}}]
        await gql(bob, 'mutation { deletePreset(name: "mine") }')
        assert len((await gql(alice, PRESETS))["data"]["presets"]) == 1
