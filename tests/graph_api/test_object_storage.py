"""The API on either storage backend: uploads land in the store, downloads stream with Range,
images are cached there, deleteFile deletes the object; an unreachable store is a 503 on
`/readyz` that names it, and an upload it cannot take is refused, never half-accepted."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from api_client import gql, running, uploaded
from sqlalchemy import text

from cli.stack import S3Server, free_port
from jobs.settings import Settings


async def test_upload_download_image_delete(
    settings: Settings, storage_url: str, wav_file: Path
) -> None:
    content = wav_file.read_bytes()
    async with running(settings.model_copy(update={"storage_url": storage_url})) as (app, client):
        storage = app.state.runtime.storage
        file = await uploaded(client, wav_file)
        key = f"in/{file['id']}.wav"
        assert b"".join(storage.chunks(key)) == content

        full = await client.get(file["downloadUrl"])
        assert full.status_code == 200
        assert full.content == content
        assert full.headers["content-length"] == str(len(content))
        part = await client.get(file["downloadUrl"], headers={"Range": "bytes=100-199"})
        assert part.status_code == 206
        assert part.content == content[100:200]
        assert part.headers["content-range"] == f"bytes 100-199/{len(content)}"
        tail = await client.get(file["downloadUrl"], headers={"Range": "bytes=-10"})
        assert tail.content == content[-10:]
        beyond = await client.get(file["downloadUrl"], headers={"Range": f"bytes={len(content)}-"})
        assert beyond.status_code == 416
        assert beyond.headers["content-range"] == f"bytes */{len(content)}"

        png = await client.get(f"/files/{file['id']}/waveform.png")
        assert png.status_code == 200
        assert png.content.startswith(b"\x89PNG")
        assert storage.exists(f"img/{file['id']}.waveform.png")

        body = await gql(client, "mutation($id: ID!) { deleteFile(id: $id) }", {"id": file["id"]})
        assert body["data"] == {"deleteFile": True}
        assert not storage.exists(key)
        assert (await client.get(file["downloadUrl"])).status_code == 404
        assert [o.key for o in storage.list("in/")] == []
        assert [o.key for o in storage.list("scratch/")] == []


async def test_unreachable_store_is_named_by_readyz(
    settings: Settings, s3_server: S3Server, wav_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    settings = settings.model_copy(update={"storage_url": "s3://gone-bucket/engine"})
    async with running(settings) as (app, client):
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        check = ready.json()["checks"]["storage"]
        assert check.startswith("failed: s3://gone-bucket/engine is not reachable"), check

        response = await client.post("/files", files={"file": ("a.wav", wav_file.read_bytes())})
        assert response.status_code == 503, response.text
        assert response.json()["code"] == "STORAGE_UNAVAILABLE"
        async with app.state.runtime.db.transaction() as session:
            rows = (await session.execute(text("SELECT count(*) FROM files"))).scalar_one()
        assert rows == 0


async def test_the_api_sweeps_periodically(settings: Settings, storage_url: str) -> None:
    settings = settings.model_copy(
        update={"storage_url": storage_url, "sweep_interval_s": 0.2, "sweep_min_age_s": 0.01}
    )
    async with running(settings) as (app, _client):
        storage = app.state.runtime.storage
        with storage.writing("out/orphan.wav") as tmp:
            tmp.write_bytes(b"no job refers to me")
        deadline = asyncio.get_running_loop().time() + 30
        while storage.exists("out/orphan.wav"):
            assert asyncio.get_running_loop().time() < deadline, "the sweep never ran"
            await asyncio.sleep(0.1)
