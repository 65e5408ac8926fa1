"""Uploads through GraphQL multipart and REST, and downloads with Range."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf
from api_client import PREFLIGHT, as_key, codes, gql, make_key, running, upload, uploaded

from graph_api.runtime import Runtime
from graph_api.uploads import MAX_FILENAME, clean_filename
from jobs.db import repository as repo
from jobs.errors import without_paths
from jobs.models import AudioFile
from jobs.settings import Settings


async def test_upload_wav_is_probed_and_stored(
    client: httpx.AsyncClient, runtime: Runtime, wav_file: Path
) -> None:
    file = await uploaded(client, wav_file)
    assert file["format"] == "WAV"
    assert file["subtype"] == "FLOAT"
    assert (file["sampleRate"], file["channels"], file["frames"]) == (48_000, 2, 48_000)
    assert file["durationSeconds"] == 1.0
    assert file["sizeBytes"] == wav_file.stat().st_size
    assert file["filename"] == "tone.wav"
    assert file["downloadUrl"] == f"/files/{file['id']}"
    stored = runtime.storage.path(f"in/{file['id']}.wav")
    assert stored.read_bytes() == wav_file.read_bytes()


async def test_filename_is_sanitized(client: httpx.AsyncClient, wav_file: Path) -> None:
    body = await upload(client, wav_file.read_bytes(), "../../etc/evil.wav")
    assert body["data"]["uploadAudio"]["filename"] == "evil.wav"


def test_clean_filename() -> None:
    assert clean_filename("C:\\music\\a\x00b\x1f.wav") == "ab.wav"
    assert clean_filename("..") == "upload"
    assert clean_filename(None) == "upload"
    long = clean_filename("x" * 500 + ".flac")
    assert len(long) == MAX_FILENAME
    assert long.endswith(".flac")


async def test_corrupt_upload_is_refused_and_nothing_stored(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    body = await upload(client, b"this is not audio at all" * 100, "fake.wav")
    assert codes(body) == ["UNSUPPORTED_AUDIO"]
    assert body["data"] is None
    leftovers = [p for p in runtime.storage.root.rglob("*") if p.is_file()]
    assert leftovers == []


async def test_oversized_upload_is_refused(settings: Settings, wav_file: Path) -> None:
    small = settings.model_copy(update={"max_upload_bytes": 1000})
    async with running(small) as (app, client):
        body = await upload(client, wav_file.read_bytes())
        assert codes(body) == ["PAYLOAD_TOO_LARGE"]
        runtime: Runtime = app.state.runtime
        assert [p for p in runtime.storage.root.rglob("*") if p.is_file()] == []


async def test_cross_site_multipart_needs_a_preflight_header(
    client: httpx.AsyncClient, wav_file: Path
) -> None:
    files = {"file": ("a.wav", wav_file.read_bytes())}
    evil = {"Origin": "https://evil.example"}
    response = await client.post("/files", files=files, headers=evil)
    assert response.status_code == 400
    assert response.json()["code"] == "CSRF_PREVENTED"
    browser = {"Sec-Fetch-Site": "cross-site"}
    assert (await client.post("/files", files=files, headers=browser)).status_code == 400
    allowed = [
        {**evil, **PREFLIGHT},  # the header forces a CORS preflight
        {"Origin": "http://api"},  # same origin (GraphiQL)
        {},  # no browser: curl, httpx, the CLI
    ]
    for headers in allowed:
        response = await client.post("/files", files=files, headers=headers)
        assert response.status_code == 201, (headers, response.text)


async def test_rest_upload_and_download(client: httpx.AsyncClient, wav_file: Path) -> None:
    content = wav_file.read_bytes()
    response = await client.post(
        "/files", headers=PREFLIGHT, files={"file": ("my tone.wav", content, "audio/wav")}
    )
    assert response.status_code == 201, response.text
    file = response.json()
    assert (file["sampleRate"], file["channels"], file["format"]) == (48_000, 2, "WAV")

    full = await client.get(file["downloadUrl"])
    assert full.status_code == 200
    assert full.content == content
    assert full.headers["content-type"] == "audio/wav"
    assert full.headers["content-disposition"].startswith("attachment;")
    assert "my%20tone.wav" in full.headers["content-disposition"] or (
        "my tone.wav" in full.headers["content-disposition"]
    )

    part = await client.get(file["downloadUrl"], headers={"Range": "bytes=0-99"})
    assert part.status_code == 206
    assert part.content == content[:100]
    assert part.headers["content-range"] == f"bytes 0-99/{len(content)}"


async def test_download_unknown_file_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/files/nope")
    assert response.status_code == 404
    assert response.json()["code"] == "NOT_FOUND"


async def test_file_query(client: httpx.AsyncClient, wav_file: Path) -> None:
    file = await uploaded(client, wav_file)
    body = await gql(client, "query($id: ID!) { file(id: $id) { id frames } }", {"id": file["id"]})
    assert body["data"]["file"] == {"id": file["id"], "frames": 48_000}
    body = await gql(client, 'query { file(id: "missing") { id } }')
    assert body["data"]["file"] is None


async def test_downloaded_file_decodes(
    client: httpx.AsyncClient, wav_file: Path, tmp_path: Path
) -> None:
    file = await uploaded(client, wav_file)
    target = tmp_path / "back.wav"
    target.write_bytes((await client.get(file["downloadUrl"])).content)
    assert sf.info(str(target)).frames == 48_000


async def test_sizes_past_32_bits_are_sent_whole(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    """GraphQL's Int stops at 2^31 - 1; frames and sizeBytes are BigInt."""
    row = await runtime.store.add_file(
        AudioFile(
            repo.new_id(), "long.wav", "WAV", "FLOAT", 192_000, 2, 2_764_800_000,
            22_118_400_044, "in/long.wav", "input", None, repo.now(),
        ),
    )  # fmt: skip
    body = await gql(
        client, "query ($id: ID!) { file(id: $id) { frames sizeBytes } }", {"id": row.id}
    )
    assert body.get("errors") is None, body
    assert body["data"]["file"] == {"frames": 2_764_800_000, "sizeBytes": 22_118_400_044}


def _float_wav(audio: np.ndarray) -> bytes:
    out = io.BytesIO()
    sf.write(out, audio.T, 48_000, format="WAV", subtype="FLOAT")
    return out.getvalue()


def _crafted() -> dict[str, tuple[bytes, str]]:
    """The adversarial probe's files, and what the refusal must name."""
    mixed = np.full((2, 20_000), 0.1, dtype=np.float32)
    mixed[1, 12_345], mixed[0, 15_000] = np.nan, 3e38
    return {
        "nan": (_float_wav(np.full((2, 4800), np.nan, dtype=np.float32)), "frame 0, channel 0"),
        "huge": (_float_wav(np.full((2, 4800), 3e38, dtype=np.float32)), "frame 0, channel 0"),
        "mixed": (_float_wav(mixed), "frame 12345, channel 1"),
    }


async def test_non_finite_or_absurd_float_audio_is_refused_naming_the_sample(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    for name, (content, where) in _crafted().items():
        body = await upload(client, content, f"{name}.wav")
        assert codes(body) == ["UNSUPPORTED_AUDIO"], body
        assert where in body["errors"][0]["message"], body
        response = await client.post(
            "/files", headers=PREFLIGHT, files={"file": (f"{name}.wav", content, "audio/wav")}
        )
        assert response.status_code == 415, response.text
        assert response.json()["code"] == "UNSUPPORTED_AUDIO"
        assert where in response.json()["message"]
    assert [p for p in runtime.storage.root.rglob("*") if p.is_file()] == []


async def test_truncated_wav_is_refused_not_stored_as_half_a_file(
    client: httpx.AsyncClient, runtime: Runtime, wav_file: Path
) -> None:
    content = wav_file.read_bytes()
    body = await upload(client, content[: len(content) // 2], "half.wav")
    assert codes(body) == ["UNSUPPORTED_AUDIO"], body
    message = body["errors"][0]["message"]
    assert "truncated" in message and str(runtime.storage.root) not in message
    assert [p for p in runtime.storage.root.rglob("*") if p.is_file()] == []


async def test_undecodable_upload_names_the_problem_not_the_path(
    secure_settings: Settings,
) -> None:
    """libsndfile says "Error opening '<data dir>/storage/tmp/<id>.part'": the client hears
    what is wrong with the audio, never where the server keeps it (GraphQL and REST)."""
    key = await make_key(secure_settings, "alice")
    data_dir = str(secure_settings.data_dir.resolve())
    async with running(secure_settings) as (app, _), as_key(app, key) as client:
        body = await upload(client, b"RIFF\x00\x00\x00\x00WAVEjunk" * 50, "broken.wav")
        response = await client.post("/files", files={"file": ("broken.wav", b"\x00" * 999)})
        storage = str(app.state.runtime.storage.root)
    assert codes(body) == ["UNSUPPORTED_AUDIO"], body
    assert response.status_code == 415, response.text
    for message in (body["errors"][0]["message"], response.json()["message"]):
        assert "audio" in message.lower(), message
        for leak in (data_dir, storage, "storage", "tmp", ".part", "/"):
            assert leak not in message, message


def test_paths_are_cut_from_messages() -> None:
    assert (
        without_paths("Error opening '/srv/data/storage/tmp/1.part': Format not recognised.")
        == "Error opening the file: Format not recognised."
    )
    assert without_paths('open "data/storage/in/a.wav" failed') == "open the file failed"
    assert without_paths("no such file /srv/x/y.wav") == "no such file the file"
    for kept in ("no audio file with id 'abc'", "8000 to 192000 Hz", "see https://x.org/a/b"):
        assert without_paths(kept) == kept
