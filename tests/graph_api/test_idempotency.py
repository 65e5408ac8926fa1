"""The Idempotency-Key header: replay, conflict, per owner, 24 h, released on failure."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from api_client import as_key, codes, make_key, running, uploaded
from sqlalchemy import update

from graph_api.runtime import Runtime
from jobs.db import repository as repo
from jobs.db.tables import IdempotencyKeyRow
from jobs.settings import Settings
from tests.conftest import sine, write_wav
from tests.http_servers import Reply, http_server

SUBMIT = "mutation($input: JobInput!) { submitJob(input: $input) { id status } }"
BATCH = "mutation($input: BatchInput!) { submitBatch(input: $input) { id jobs { id } } }"


async def _gql(
    client: httpx.AsyncClient, query: str, variables: dict[str, Any], key: str
) -> dict[str, Any]:
    response = await client.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers={"Idempotency-Key": key},
    )
    body: dict[str, Any] = response.json()
    return body


async def _jobs(runtime: Runtime) -> list[str]:
    async with runtime.db.transaction() as session:
        return [j.id for j in (await repo.list_jobs(session, first=100))[0]]


async def _post_file(client: httpx.AsyncClient, path: Path, key: str) -> httpx.Response:
    return await client.post(
        "/files",
        files={"file": (path.name, path.read_bytes(), "audio/wav")},
        headers={"Idempotency-Key": key},
    )


async def test_submit_job_replays_and_conflicts(
    client: httpx.AsyncClient, runtime: Runtime, wav_file: Path
) -> None:
    file = await uploaded(client, wav_file)
    job_input = {"fileId": file["id"], "effects": [{"gain": {"db": -3}}]}
    first = await _gql(client, SUBMIT, {"input": job_input}, "k-1")
    again = await _gql(client, SUBMIT, {"input": job_input}, "k-1")
    assert "errors" not in first, first
    assert again["data"]["submitJob"]["id"] == first["data"]["submitJob"]["id"]
    assert await _jobs(runtime) == [first["data"]["submitJob"]["id"]]  # nothing new

    other = {"fileId": file["id"], "effects": [{"gain": {"db": -4}}]}
    conflict = await _gql(client, SUBMIT, {"input": other}, "k-1")
    assert codes(conflict) == ["CONFLICT"]
    assert "different request" in conflict["errors"][0]["message"]
    # The same body under another operation is a different request too.
    assert len(await _jobs(runtime)) == 1
    fresh = await _gql(client, SUBMIT, {"input": other}, "k-2")
    assert fresh["data"]["submitJob"]["id"] != first["data"]["submitJob"]["id"]


async def test_a_failed_request_gives_its_key_back(
    client: httpx.AsyncClient, runtime: Runtime, wav_file: Path
) -> None:
    bad = await _gql(client, SUBMIT, {"input": {"fileId": "nope", "effects": []}}, "k")
    assert codes(bad) == ["NOT_FOUND"]
    file = await uploaded(client, wav_file)
    good = {"fileId": file["id"], "effects": [{"gain": {"db": -3}}]}
    assert "errors" not in await _gql(client, SUBMIT, {"input": good}, "k")
    assert len(await _jobs(runtime)) == 1


async def test_submit_batch_replays(
    client: httpx.AsyncClient, runtime: Runtime, wav_file: Path
) -> None:
    file = await uploaded(client, wav_file)
    batch_input = {"fileIds": [file["id"]], "effects": [{"gain": {"db": -3}}]}
    first = await _gql(client, BATCH, {"input": batch_input}, "b")
    again = await _gql(client, BATCH, {"input": batch_input}, "b")
    assert again["data"] == first["data"] and "errors" not in first
    async with runtime.db.transaction() as session:
        assert len((await repo.list_batches(session))[0]) == 1
    assert len(await _jobs(runtime)) == 1
    assert codes(await _gql(client, SUBMIT, {"input": {"fileId": file["id"]}}, "b")) == ["CONFLICT"]


async def test_upload_replays_by_content_and_conflicts(
    client: httpx.AsyncClient, runtime: Runtime, wav_file: Path, tmp_path: Path
) -> None:
    # Each POST has its own random multipart boundary: the file, not the body, is compared.
    first = await _post_file(client, wav_file, "u")
    again = await _post_file(client, wav_file, "u")
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json()["id"] == first.json()["id"]
    other = write_wav(tmp_path / "other.wav", sine(220.0, 0.5))
    conflict = await _post_file(client, other, "u")
    assert conflict.status_code == 409 and conflict.json()["code"] == "CONFLICT"
    bad = await _post_file(client, other, "")
    assert bad.status_code == 400 and bad.json()["code"] == "BAD_INPUT"

    # After 24 h the key is forgotten: the same request makes a new file.
    async with runtime.db.transaction() as session:
        await session.execute(
            update(IdempotencyKeyRow).values(created_at=repo.now() - timedelta(hours=24, seconds=1))
        )
    later = await _post_file(client, wav_file, "u")
    assert later.status_code == 201 and later.json()["id"] != first.json()["id"]


async def test_keys_are_per_owner(secure_settings: Settings, wav_file: Path) -> None:
    alice = await make_key(secure_settings, "alice")
    bob = await make_key(secure_settings, "bob")
    async with running(secure_settings) as (app, _):
        async with as_key(app, alice) as client:
            mine = (await _post_file(client, wav_file, "same")).json()
        async with as_key(app, bob) as client:
            theirs = (await _post_file(client, wav_file, "same")).json()
    assert mine["id"] != theirs["id"]


async def test_import_audio_replays_without_fetching_again(
    settings: Settings, wav_file: Path
) -> None:
    settings = settings.model_copy(update={"allow_private_urls": True})
    query = "mutation($url: String!) { importAudio(url: $url) { id } }"
    audio = wav_file.read_bytes()
    with http_server(lambda r: Reply(200, {}, audio)) as server:
        async with running(settings) as (_app, client):
            url = server.url("/a.wav")
            first = await _gql(client, query, {"url": url}, "i")
            again = await _gql(client, query, {"url": url}, "i")
            other = await _gql(client, query, {"url": server.url("/b.wav")}, "i")
    assert again["data"] == first["data"] and "errors" not in first, first
    assert codes(other) == ["CONFLICT"]
    assert [r.path for r in server.seen()] == ["/a.wav"]  # fetched once
