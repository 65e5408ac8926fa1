"""importAudio against real HTTP servers on 127.0.0.1 (private URLs allowed in these
settings, except where the default refusal is the point)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_client import codes, gql, running

from cli.stack import S3Server, free_port
from jobs.settings import Settings
from tests.http_servers import Reply, Request, http_server

IMPORT = """
mutation($url: String!) { importAudio(url: $url) { id filename format frames sizeBytes } }
"""


@pytest.fixture
def open_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"allow_private_urls": True})


async def import_url(settings: Settings, url: str) -> dict[str, Any]:
    async with running(settings) as (_app, client):
        return await gql(client, IMPORT, {"url": url})


async def test_import_stores_what_the_url_serves(open_settings: Settings, wav_file: Path) -> None:
    audio = wav_file.read_bytes()
    # The name says text, the type says text: the decoder decides.
    with http_server(lambda r: Reply(200, {"Content-Type": "text/plain"}, audio)) as server:
        body = await import_url(open_settings, server.url("/podcast/episode%201.txt"))
    assert "errors" not in body, body
    file = body["data"]["importAudio"]
    assert (file["format"], file["frames"], file["sizeBytes"]) == ("WAV", 48_000, len(audio))
    assert file["filename"] == "episode 1.txt"
    stored = open_settings.storage_path / "in" / f"{file['id']}.wav"
    assert stored.read_bytes() == audio


async def test_import_follows_a_redirect(open_settings: Settings, wav_file: Path) -> None:
    audio = wav_file.read_bytes()

    def handle(request: Request) -> Reply:
        if request.path == "/old":
            return Reply(302, {"Location": "/new.wav"})
        return Reply(200, body=audio)

    with http_server(handle) as server:
        body = await import_url(open_settings, server.url("/old"))
    assert "errors" not in body, body
    assert [r.path for r in server.seen()] == ["/old", "/new.wav"]


async def test_default_settings_refuse_a_loopback_url(settings: Settings) -> None:
    with http_server(lambda r: Reply(200, body=b"")) as server:
        body = await import_url(settings, server.url("/a.wav"))
        assert server.seen() == []
    assert codes(body) == ["BAD_INPUT"]
    assert "AUDIO_ENGINE_ALLOW_PRIVATE_URLS" in body["errors"][0]["message"]


async def test_non_audio_is_refused_by_content(open_settings: Settings) -> None:
    with http_server(lambda r: Reply(200, {"Content-Type": "audio/wav"}, b"<html>" * 500)) as s:
        body = await import_url(open_settings, s.url("/song.wav"))
    assert codes(body) == ["UNSUPPORTED_AUDIO"]
    assert list((open_settings.storage_path / "in").glob("*")) == []


def _chunks(data: bytes, size: int) -> Iterator[bytes]:
    for at in range(0, len(data), size):
        yield data[at : at + size]


@pytest.mark.parametrize("declared", [True, False])
async def test_too_large(open_settings: Settings, wav_file: Path, declared: bool) -> None:
    audio = wav_file.read_bytes()
    small = open_settings.model_copy(update={"max_upload_bytes": len(audio) - 1})
    reply = Reply(200, body=audio) if declared else Reply(200, body=_chunks(audio, 65536))
    with http_server(lambda r: reply) as server:
        body = await import_url(small, server.url("/big.wav"))
    assert codes(body) == ["PAYLOAD_TOO_LARGE"]


async def test_unreachable(open_settings: Settings) -> None:
    body = await import_url(open_settings, f"http://127.0.0.1:{free_port()}/a.wav")
    assert codes(body) == ["URL_UNREACHABLE"]
    with http_server(lambda r: Reply(404, body=b"gone")) as server:
        body = await import_url(open_settings, server.url("/a.wav"))
    assert codes(body) == ["URL_UNREACHABLE"]
    assert "404" in body["errors"][0]["message"]


async def test_too_slow(open_settings: Settings, wav_file: Path) -> None:
    audio = wav_file.read_bytes()
    stop = threading.Event()

    def stalls() -> Iterator[bytes]:
        yield audio[:1000]
        stop.wait(30)  # sends nothing more until the test ends

    def trickles() -> Iterator[bytes]:
        for chunk in _chunks(audio, 2000):
            if stop.wait(0.1):
                return
            yield chunk

    quick = open_settings.model_copy(update={"url_read_timeout_s": 0.5, "import_timeout_s": 1.5})
    try:
        with http_server(lambda r: Reply(200, body=stalls())) as server:
            body = await import_url(quick, server.url("/a.wav"))
        assert codes(body) == ["URL_TIMEOUT"]
        # Every read is quick, but the whole would take 20 s.
        with http_server(lambda r: Reply(200, body=trickles())) as server:
            body = await import_url(quick, server.url("/a.wav"))
        assert codes(body) == ["URL_TIMEOUT"]
        assert "took too long" in body["errors"][0]["message"]
    finally:
        stop.set()


async def test_redirect_loop(open_settings: Settings) -> None:
    def handle(request: Request) -> Reply:
        return Reply(302, {"Location": "/b" if request.path == "/a" else "/a"})

    with http_server(handle) as server:
        body = await import_url(open_settings, server.url("/a"))
    assert codes(body) == ["REDIRECT_LOOP"]


async def test_other_schemes_are_bad_input(open_settings: Settings) -> None:
    body = await import_url(open_settings, "file:///etc/passwd")
    assert codes(body) == ["BAD_INPUT"]
    body = await import_url(open_settings, "s3://bucket/a.wav")  # no object storage here
    assert codes(body) == ["BAD_INPUT"]
    assert "object storage" in body["errors"][0]["message"]


async def test_s3_import_reads_other_buckets_and_keys_but_not_the_engines_own(
    settings: Settings, s3_server: S3Server, wav_file: Path
) -> None:
    audio = wav_file.read_bytes()
    engine = s3_server.url()  # s3://bucket/prefix: where the engine keeps its blobs
    bucket, prefix = engine.removeprefix("s3://").split("/", 1)
    other = s3_server.new_bucket()
    s3_server.put(other, "episodes/ep 1 (final)?.wav", audio)  # S3 allows what we don't
    s3_server.put(bucket, "elsewhere/take.wav", audio)
    s3_server.put(bucket, f"{prefix}/in/someone-elses.wav", audio)
    async with running(settings.model_copy(update={"storage_url": engine})) as (app, client):
        storage = app.state.runtime.storage
        imported = []
        for url, name in (
            (f"s3://{other}/episodes/ep 1 (final)?.wav", "ep 1 (final)?.wav"),
            (f"s3://{bucket}/elsewhere/take.wav", "take.wav"),  # beside the prefix
        ):
            body = await gql(client, IMPORT, {"url": url})
            assert "errors" not in body, body
            file = body["data"]["importAudio"]
            assert (file["format"], file["frames"], file["filename"]) == ("WAV", 48_000, name)
            imported.append(f"in/{file['id']}.wav")
            assert b"".join(storage.chunks(imported[-1])) == audio
        for url in (
            f"s3://{bucket}/{prefix}/in/someone-elses.wav",
            f"s3://{bucket}//{prefix}/in/someone-elses.wav",
            f"s3://{bucket.upper()}/{prefix}/in/someone-elses.wav",
        ):
            body = await gql(client, IMPORT, {"url": url})
            assert codes(body) == ["BAD_INPUT"], url
            assert "the engine's own storage" in body["errors"][0]["message"]
        body = await gql(client, IMPORT, {"url": f"s3://{other}/episodes/missing.wav"})
        assert codes(body) == ["URL_UNREACHABLE"]
        # The refusals and the miss stored nothing.
        others = ["in/someone-elses.wav"]  # the object put there above
        assert sorted(o.key for o in storage.list("in/")) == sorted(imported + others)
