"""Limits with clear errors: body size (announced and streamed), audio limits on upload,
IR length and chain length at submit, GraphQL depth/token/alias limits, masked errors, and
sanitized filenames."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf
from api_client import (
    PREFLIGHT,
    UPLOAD,
    as_key,
    codes,
    gql,
    make_key,
    running,
    upload,
    uploaded,
)

from graph_api.limits import ENVELOPE_BYTES
from graph_api.uploads import clean_filename
from jobs.db import repository as repo
from jobs.settings import Settings


def wav_bytes(rate: int = 48_000, channels: int = 2, seconds: float = 0.1) -> bytes:
    buffer = io.BytesIO()
    t = np.arange(int(seconds * rate)) / rate
    audio = np.stack([0.5 * np.sin(2 * np.pi * (440 + k) * t) for k in range(channels)])
    sf.write(buffer, audio.T.astype(np.float32), rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (wav_bytes(channels=9), "9 channels"),
        (wav_bytes(rate=4_000), "4000 Hz"),
        (wav_bytes(rate=384_000, seconds=0.01), "384000 Hz"),
        (wav_bytes(seconds=1.0), "lasts 1.0 s"),
    ],
)
async def test_audio_limits_on_upload(settings: Settings, content: bytes, words: str) -> None:
    strict = settings.model_copy(update={"max_duration_s": 0.5})
    async with running(strict) as (app, client):
        body = await upload(client, content)
        assert codes(body) == ["UNSUPPORTED_AUDIO"], body
        assert words in body["errors"][0]["message"]
        response = await client.post("/files", files={"file": ("a.wav", content)})
        assert response.status_code == 415
        assert words in response.json()["message"]
        assert [p for p in app.state.runtime.storage.root.rglob("*") if p.is_file()] == []


async def test_limits_at_the_edges_pass(client: httpx.AsyncClient) -> None:
    for content in (wav_bytes(channels=8), wav_bytes(rate=8_000), wav_bytes(rate=192_000)):
        assert "errors" not in await upload(client, content)


async def test_long_impulse_response_is_refused(settings: Settings, wav_file: Path) -> None:
    strict = settings.model_copy(update={"max_ir_seconds": 0.5})
    async with running(strict) as (_, client):
        file = await uploaded(client, wav_file)
        ir = await uploaded(client, wav_file)  # 1 s
        body = await gql(
            client,
            "mutation($i: JobInput!) { submitJob(input: $i) { id } }",
            {"i": {"fileId": file["id"], "effects": [{"reverb": {"impulse": ir["id"]}}]}},
        )
        assert codes(body) == ["BAD_INPUT"]
        assert "at most 0.5 s" in body["errors"][0]["message"]


async def test_chain_length_limit(client: httpx.AsyncClient, wav_file: Path) -> None:
    file = await uploaded(client, wav_file)
    body = await gql(
        client,
        "mutation($i: JobInput!) { submitJob(input: $i) { id } }",
        {"i": {"fileId": file["id"], "effects": [{"gain": {"db": 0}}] * 33}},
    )
    assert codes(body) == ["BAD_INPUT"] and "at most 32" in body["errors"][0]["message"]


async def test_announced_body_too_large_is_refused_before_reading(settings: Settings) -> None:
    small = settings.model_copy(update={"max_upload_bytes": 1000})
    async with running(small) as (_, client):
        response = await client.post(
            "/files", content=b"x" * 10, headers={"Content-Length": str(50 * 2**20)}
        )
        assert response.status_code == 413
        assert response.json()["code"] == "PAYLOAD_TOO_LARGE"


@pytest.mark.parametrize("path", ["/files", "/graphql"])
async def test_chunked_body_too_large_is_counted(settings: Settings, path: str) -> None:
    small = settings.model_copy(update={"max_upload_bytes": 1000})
    boundary = "b0undary"
    if path == "/files":
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
        )
    else:
        ops = json.dumps({"query": UPLOAD, "variables": {"file": None}})
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="operations"\r\n\r\n{ops}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="map"\r\n\r\n'
            '{"0": ["variables.file"]}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="0"; filename="a.wav"\r\n\r\n'
        )
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        yield head.encode()
        for _ in range(64):  # 4 MB in 64 KB chunks, never announced
            sent += 1
            yield b"\0" * 65536
        yield f"\r\n--{boundary}--\r\n".encode()

    async with running(small) as (_, client):
        response = await client.post(
            path,
            content=body(),
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}", **PREFLIGHT},
        )
    assert response.status_code == 413, response.text
    assert response.json()["code"] == "PAYLOAD_TOO_LARGE"
    assert sent < 64  # it stopped reading early


async def test_query_depth_tokens_and_aliases_are_limited(client: httpx.AsyncClient) -> None:
    deep = "{ effects { params { " + "fields { " * 12 + "name" + " }" * 12 + " } } }"
    many_tokens = "{ " + " ".join(["__typename"] * 10_001) + " }"
    aliases = "{ " + " ".join(f"a{i}: __typename" for i in range(30)) + " }"
    for query, words in ((deep, "depth"), (many_tokens, "token"), (aliases, "alias")):
        body = await gql(client, query)
        assert codes(body) == ["GRAPHQL_VALIDATION_FAILED"], body
        assert words in body["errors"][0]["message"].lower()
        assert body.get("data") is None
    ok = "{ effects { params { fields { name } } } }"
    assert "errors" not in await gql(client, ok)


async def test_unexpected_errors_are_masked(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret: /srv/db password=hunter2")

    monkeypatch.setattr(repo, "list_jobs", broken)
    response = await client.post("/graphql", json={"query": "{ jobs { edges { cursor } } }"})
    assert response.status_code == 200
    body = response.json()
    assert codes(body) == ["INTERNAL_SERVER_ERROR"]
    assert "hunter2" not in response.text and "Traceback" not in response.text
    assert "stacktrace" not in response.text.lower()


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\win.ini", "win.ini"),
        ("/abs/path/x.wav", "x.wav"),
        ("a\x00b\r\nc.wav", "abc.wav"),
        ("evil\u202egnp.wav", "evilgnp.wav"),  # right-to-left override
        ("\x1b[31mred.wav", "[31mred.wav"),
        ("./", "upload"),
        ("....", "...."),
    ],
)
def test_filenames_are_sanitized(raw: str, clean: str) -> None:
    assert clean_filename(raw) == clean


async def test_sanitized_names_reach_the_download_header(
    client: httpx.AsyncClient, wav_file: Path
) -> None:
    body = await upload(client, wav_file.read_bytes(), "../x\r\nSet-Cookie: a=b.wav")
    file = body["data"]["uploadAudio"]
    # The client percent-encodes CR LF in a multipart filename (as browsers do), and the
    # folder goes: one harmless header value is left. (`test_filenames_are_sanitized` covers
    # raw line breaks.)
    assert file["filename"] == "x%0D%0ASet-Cookie: a=b.wav"
    response = await client.get(file["downloadUrl"])
    assert "set-cookie" not in response.headers
    assert "\n" not in response.headers["content-disposition"]


def test_wav_helper_is_sane() -> None:
    info = sf.info(io.BytesIO(wav_bytes(channels=3)))
    assert info.channels == 3 and np.isclose(info.duration, 0.1)


async def test_bodies_without_a_file_are_held_to_the_envelope(secure_settings: Settings) -> None:
    """A JSON document is parsed whole in memory: one past ENVELOPE_BYTES is refused (413)
    whether it announces its length or not, even with a key and a large upload limit."""
    key = await make_key(secure_settings, "alice")
    huge = json.dumps({"query": "{ __typename }", "variables": {"x": "a" * ENVELOPE_BYTES}})

    async def chunked() -> AsyncIterator[bytes]:
        for start in range(0, len(huge), 65536):
            yield huge[start : start + 65536].encode()

    async with running(secure_settings) as (app, _), as_key(app, key) as client:
        for content in (huge.encode(), chunked()):
            response = await client.post(
                "/graphql", content=content, headers={"Content-Type": "application/json"}
            )
            assert response.status_code == 413, response.text
            assert response.json()["code"] == "PAYLOAD_TOO_LARGE"
        fits = json.dumps({"query": "{ __typename }", "variables": {"x": "a" * 1000}})
        response = await client.post(
            "/graphql", content=fits, headers={"Content-Type": "application/json"}
        )
        assert response.json() == {"data": {"__typename": "Query"}}
