"""The whole path through real processes: HTTP upload -> GraphQL submit -> RabbitMQ -> bridge
-> Ray actor -> stored output -> events over the graphql-transport-ws subscription."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf
from scipy.signal import sosfilt

from cli.client import SUBMIT, graphql, job_events, upload
from cli.stack import ROOT, Service, Stack
from tests.conftest import sine, storage_url_for, write_wav
from tests.loudness_signals import music_like
from tests.rbj import rbj_sos

CHAIN = [
    {"gain": {"db": -3.0}},
    {
        "eq": {
            "bands": [
                {"kind": "HIGHPASS", "frequency": 80.0},
                {"kind": "PEAK", "frequency": 1000.0, "q": 1.0, "gainDb": 6.0},
            ]
        }
    },
]


def reference(x: np.ndarray, rate: int) -> np.ndarray:
    sos = np.stack(
        [rbj_sos("highpass", 80.0, 0.7071, 0.0, rate), rbj_sos("peak", 1000.0, 1.0, 6.0, rate)]
    )
    return sosfilt(sos, x.astype(np.float64) * 10 ** (-3 / 20), axis=-1)


@pytest.fixture(scope="module", params=["local", "s3"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Stack:
    """The whole suite once per storage backend: the local folder, then moto's S3."""
    return Stack(
        tmp_path_factory.mktemp("e2e") / "data",
        extra_env={"AUDIO_ENGINE_POOL_SIZE": "1"},
        storage_url=storage_url_for(request.param, request),
    )


@pytest.fixture(scope="module")
def key(stack: Stack) -> str:
    return stack.create_key("e2e", admin=False)


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _client(url: str, key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, timeout=60, headers=_auth(key))


@pytest.fixture(scope="module")
def api(stack: Stack, key: str) -> Iterator[Service]:
    service = stack.start_api()
    yield service
    assert service.stop() == 0, service.log()[-3000:]


@pytest.fixture(scope="module")
def bridge(stack: Stack, api: Service) -> Iterator[Service]:
    service = stack.start("bridge")
    service.wait_http(f"{stack.url}/readyz")
    service.wait_log("bridge consuming")
    yield service
    assert service.stop() == 0, service.log()[-3000:]


async def _submit(url: str, key: str, path: Path, effects: list[dict[str, object]]) -> str:
    async with _client(url, key) as http:
        file = await upload(http, path)
        data = await graphql(http, SUBMIT, {"input": {"fileId": file["id"], "effects": effects}})
    return str(data["submitJob"]["id"])


async def _events(url: str, key: str, job_id: str) -> list[dict[str, object]]:
    return [event async for event in job_events(url, job_id, key)]


def test_upload_submit_watch_download(
    stack: Stack, api: Service, key: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    rng = np.random.default_rng(3)
    audio = sine(440.0, 2.0) + 0.1 * rng.standard_normal((2, 96_000)).astype(np.float32)
    path = write_wav(tmp_path / "in.wav", audio)

    async def scenario() -> list[dict[str, object]]:
        job_id = await _submit(stack.url, key, path, CHAIN)
        # Subscribe while no bridge runs yet, so QUEUED is seen for sure; then start one.
        events: list[dict[str, object]] = []
        stream = job_events(stack.url, job_id, key)
        events.append(await anext(stream))
        await asyncio.to_thread(request.getfixturevalue, "bridge")
        events += [e async for e in stream]
        return events

    events = asyncio.run(scenario())
    statuses = [e["status"] for e in events]
    assert statuses[0] == "QUEUED"
    assert statuses[-1] == "SUCCEEDED"
    assert "RUNNING" in statuses
    # Progress never goes back and ends at 1.
    progress = [float(e["progress"]) for e in events if e["status"] == "RUNNING"]
    assert progress == sorted(progress)
    assert float(events[-1]["progress"]) == 1.0

    output = events[-1]["job"]["output"]  # type: ignore[index]
    # Stored where the stack says (with S3, no node has a storage folder), and every scratch
    # copy of the actor and the API is gone.
    assert (stack.data_dir / "storage").exists() == (not stack.storage_url)
    assert any(o.key.startswith("out/") for o in stack.storage().list("out/"))
    assert not [p for p in (stack.data_dir / "scratch").rglob("*") if p.is_file()]
    assert not [o for o in stack.storage().list("scratch/")]
    response = httpx.get(f"{stack.url}/files/{output['id']}", timeout=30, headers=_auth(key))
    assert httpx.get(f"{stack.url}/files/{output['id']}", timeout=30).status_code == 401
    assert response.status_code == 200
    out_path = tmp_path / "out.wav"
    out_path.write_bytes(response.content)
    y, rate = sf.read(out_path, dtype="float64", always_2d=True)
    assert rate == 48_000
    np.testing.assert_allclose(y.T, reference(audio, 48_000), atol=1e-5)


def test_cli_process_matches_the_service_bit_for_bit(
    stack: Stack, bridge: Service, key: str, tmp_path: Path
) -> None:
    rng = np.random.default_rng(5)
    path = write_wav(tmp_path / "in.wav", 0.3 * rng.standard_normal((2, 48_000)).astype(np.float32))
    chain = [*CHAIN, {"reverb": {"impulse": "plate", "mix": 0.4}}, {"limiter": {"ceilingDb": -1.0}}]
    chain_path = tmp_path / "chain.json"
    chain_path.write_text(json.dumps(chain))

    async def scenario() -> dict[str, object]:
        job_id = await _submit(stack.url, key, path, chain)
        return (await _events(stack.url, key, job_id))[-1]

    last = asyncio.run(scenario())
    assert last["status"] == "SUCCEEDED", last
    output_id = last["job"]["output"]["id"]  # type: ignore[index]
    service_bytes = httpx.get(f"{stack.url}/files/{output_id}", headers=_auth(key)).content

    local = tmp_path / "local.wav"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cli.main",
            "process",
            str(path),
            "-o",
            str(local),
            "--chain",
            str(chain_path),
            "--quiet",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    service_audio, _ = sf.read(__import__("io").BytesIO(service_bytes), dtype="float32")
    local_audio, _ = sf.read(local, dtype="float32")
    assert service_audio.shape == local_audio.shape
    assert np.array_equal(service_audio, local_audio)


def test_an_uploaded_mp3_is_processed_as_one_read_decodes_it(
    stack: Stack, bridge: Service, key: str, tmp_path: Path
) -> None:
    """Upload check, actor and download on an MP3: a 0 dB gain gives the whole-file decode back
    exactly (libsndfile's block reads used to put runs of wrong frames after block boundaries)."""
    path = tmp_path / "in.mp3"
    sf.write(str(path), (0.5 * music_like(44_100, 8.0, 9)).T, 44_100, format="MP3")
    decoded, _ = sf.read(path, dtype="float32", always_2d=True)

    async def scenario() -> dict[str, object]:
        job_id = await _submit(stack.url, key, path, [{"gain": {"db": 0.0}}])
        return (await _events(stack.url, key, job_id))[-1]

    last = asyncio.run(scenario())
    assert last["status"] == "SUCCEEDED", last
    output_id = last["job"]["output"]["id"]  # type: ignore[index]
    body = httpx.get(f"{stack.url}/files/{output_id}", headers=_auth(key)).content
    got, rate = sf.read(io.BytesIO(body), dtype="float32", always_2d=True)
    assert rate == 44_100 and got.shape == decoded.shape
    assert np.array_equal(got, decoded)


def test_undecodable_input_fails_the_job_and_the_bridge_goes_on(
    stack: Stack, bridge: Service, key: str, tmp_path: Path, wav_file: Path
) -> None:
    async def scenario() -> tuple[dict[str, object], dict[str, object]]:
        async with _client(stack.url, key) as http:
            file = await upload(http, wav_file)
        # The stored blob rots after upload: only the worker can find out.
        storage = stack.storage()
        blob_key = next(o.key for o in storage.list("in/") if o.key.startswith(f"in/{file['id']}."))
        with storage.writing(blob_key) as blob:
            blob.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage" * 8)
        async with _client(stack.url, key) as http:
            bad = await graphql(http, SUBMIT, {"input": {"fileId": file["id"], "effects": CHAIN}})
        bad_last = (await _events(stack.url, key, bad["submitJob"]["id"]))[-1]
        good_id = await _submit(stack.url, key, wav_file, CHAIN)
        good_last = (await _events(stack.url, key, good_id))[-1]
        return bad_last, good_last

    bad, good = asyncio.run(scenario())
    assert bad["status"] == "FAILED"
    error = bad["job"]["error"]  # type: ignore[index]
    assert error["code"] in ("UNSUPPORTED_AUDIO", "PROCESSING_FAILED")
    assert error["message"]
    assert good["status"] == "SUCCEEDED"


def test_output_file_reports_its_real_rate_and_length(
    stack: Stack, bridge: Service, key: str, wav_file: Path
) -> None:
    chain = [{"trim": {"endS": 0.5}}, {"resample": {"rate": 44_100}}]
    query = "query ($id: ID!) { job(id: $id) { output { sampleRate channels frames format } } }"

    async def scenario() -> dict[str, object]:
        job_id = await _submit(stack.url, key, wav_file, chain)
        assert (await _events(stack.url, key, job_id))[-1]["status"] == "SUCCEEDED"
        async with _client(stack.url, key) as http:
            return (await graphql(http, query, {"id": job_id}))["job"]["output"]

    output = asyncio.run(scenario())
    assert output["sampleRate"] == 44_100
    assert output["channels"] == 2
    assert abs(int(output["frames"]) - 22_050) <= 2  # type: ignore[call-overload]
    assert output["format"] == "WAV"


def test_speech_chain_reports_its_edits_and_matches_the_cli(
    stack: Stack, bridge: Service, key: str, tmp_path: Path
) -> None:
    """denoise -> silence -> gate through the service: `Job.edits` in input time, and the
    CLI's `process --edits` writes the same list and the same samples."""
    rate = 16_000
    rng = np.random.default_rng(11)
    t = np.arange(rate) / rate
    burst = 0.3 * np.sin(2 * np.pi * 300 * t) * np.sin(np.pi * t)  # 1 s "phrase"
    pause = np.zeros(2 * rate)  # 2 s: cut to 0.3 s
    mono = np.concatenate([pause[: rate // 2], burst, pause, burst, pause[: rate // 2]])
    audio = np.stack([mono, 0.5 * mono]) + 1e-3 * rng.standard_normal((2, mono.shape[0]))
    path = write_wav(tmp_path / "speech.wav", audio.astype(np.float32), rate)
    chain = [{"denoise": {}}, {"silence": {}}, {"gate": {"thresholdDb": -40}}]
    chain_path = tmp_path / "chain.json"
    chain_path.write_text(json.dumps(chain))
    query = "query ($id: ID!) { job(id: $id) { edits { startS endS } } }"

    silent = write_wav(tmp_path / "silent.wav", np.zeros((2, 3 * rate), np.float32), rate)

    cut_all = [{"silence": {"keepMs": 0}}]
    frames_query = "query ($id: ID!) { job(id: $id) { edits { startS endS } output { frames } } }"

    async def scenario() -> tuple[dict[str, object], list[dict[str, float]], list[object], object]:
        job_id = await _submit(stack.url, key, path, chain)
        last = (await _events(stack.url, key, job_id))[-1]
        plain = await _submit(stack.url, key, path, [{"gain": {"db": -1}}])
        await _events(stack.url, key, plain)
        quiet = await _submit(stack.url, key, silent, chain)
        quiet_last = (await _events(stack.url, key, quiet))[-1]
        emptied = await _submit(stack.url, key, silent, cut_all)
        emptied_last = (await _events(stack.url, key, emptied))[-1]
        async with _client(stack.url, key) as http:
            edits = (await graphql(http, query, {"id": job_id}))["job"]["edits"]
            none = (await graphql(http, query, {"id": plain}))["job"]["edits"]
            all_cut = (await graphql(http, query, {"id": quiet}))["job"]["edits"]
            nothing_kept = (await graphql(http, frames_query, {"id": emptied}))["job"]
        return last, edits, none, (quiet_last["status"], all_cut, emptied_last, nothing_kept)

    last, edits, none, (quiet_status, all_cut, emptied_last, nothing_kept) = asyncio.run(scenario())
    assert last["status"] == "SUCCEEDED", last
    assert none == []
    # An all-silent input succeeds: cut to keepMs (0.15 s kept at each end of 3 s).
    assert (quiet_status, all_cut) == ("SUCCEEDED", [{"startS": 0.15, "endS": 2.85}])
    # With keepMs=0 too, with a readable file of one frame (FLAC and MP3 cannot hold none).
    assert emptied_last["status"] == "SUCCEEDED", emptied_last
    assert nothing_kept["edits"] == [{"startS": 1 / rate, "endS": 3.0}]
    assert int(nothing_kept["output"]["frames"]) == 1  # type: ignore[index]
    body = httpx.get(
        f"{stack.url}/files/{emptied_last['job']['output']['id']}",  # type: ignore[index]
        headers=_auth(key),
    ).content
    assert sf.read(io.BytesIO(body), dtype="float32")[0].shape == (1, 2)
    assert len(edits) == 1
    # The pause between the bursts is 1.5..3.5 s of the input; 0.15 s stay at each side.
    assert 1.5 < edits[0]["startS"] < 1.8 and 3.2 < edits[0]["endS"] < 3.5
    output_id = last["job"]["output"]["id"]  # type: ignore[index]
    service_bytes = httpx.get(f"{stack.url}/files/{output_id}", headers=_auth(key)).content

    local, edits_path = tmp_path / "local.wav", tmp_path / "edits.json"
    result = subprocess.run(
        [
            *(sys.executable, "-m", "cli.main", "process", str(path), "-o", str(local)),
            *("--chain", str(chain_path), "--edits", str(edits_path), "--quiet"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(edits_path.read_text()) == edits
    # `submit --edits` writes the same list, read from the job's last update.
    remote_edits = tmp_path / "remote-edits.json"
    result = subprocess.run(
        [
            *(sys.executable, "-m", "cli.main", "submit", str(path), "--chain", str(chain_path)),
            *("--server", stack.url, "--api-key", key, "--quiet"),
            *("-o", str(tmp_path / "remote.wav"), "--edits", str(remote_edits)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(remote_edits.read_text()) == edits
    service_audio, _ = sf.read(__import__("io").BytesIO(service_bytes), dtype="float32")
    local_audio, _ = sf.read(local, dtype="float32")
    assert service_audio.shape == local_audio.shape
    assert abs(service_audio.shape[0] - (audio.shape[1] - 1.7 * rate)) < 0.05 * rate
    assert np.array_equal(service_audio, local_audio)
