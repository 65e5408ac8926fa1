"""Hostile audio against the running service (API and bridge processes, auth on): crafted
float files to every output format must not take the workers down for anyone.

The adversarial probe uploaded all-NaN and all-3e38 float WAVs and asked for MP3: LAME aborted
the actor process, retries aborted more, Ray's restart budget ran out and every other owner's
job failed with WORKER_LOST until the bridge was restarted by hand.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile as sf

from cli.client import SUBMIT, graphql, upload
from cli.stack import Service, Stack
from tests.conftest import sine, write_wav

OUTPUTS: list[dict[str, str]] = [
    {"format": "WAV", "subtype": "FLOAT"},
    {"format": "WAV", "subtype": "PCM_16"},
    {"format": "FLAC", "subtype": "PCM_24"},
    {"format": "OGG"},
    {"format": "MP3"},
]
JOB = "query ($id: ID!) { job(id: $id) { status error { code message } } }"
UPLOAD = "mutation ($file: Upload!) { uploadAudio(file: $file) { id } }"
# +120 dB on a -6 dBFS tone: 5e5, beyond any sample an encoder may be handed.
BLOW_UP = [{"gain": {"db": 60}}, {"gain": {"db": 60}}]
PLAIN = [{"gain": {"db": -3}}]


def _crafted() -> dict[str, tuple[np.ndarray, str]]:
    """The probe's files, and the sample each refusal must name."""
    mixed = (0.1 * np.random.default_rng(2).standard_normal((2, 24_000))).astype(np.float32)
    mixed[1, 9_000], mixed[0, 10_000], mixed[1, 11_000] = np.nan, np.inf, 3e38
    return {
        "nan": (np.full((2, 24_000), np.nan, dtype=np.float32), "frame 0, channel 0"),
        "huge": (np.full((2, 24_000), 3e38, dtype=np.float32), "frame 0, channel 0"),
        "mixed": (mixed, "frame 9000, channel 1"),
    }


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Stack:
    return Stack(
        tmp_path_factory.mktemp("abuse") / "data",
        extra_env={"AUDIO_ENGINE_POOL_SIZE": "2", "AUDIO_ENGINE_HEARTBEAT_INTERVAL_S": "1"},
    )


@pytest.fixture(scope="module")
def keys(stack: Stack) -> dict[str, str]:
    return {who: stack.create_key(who, admin=False) for who in ("attacker", "victim")}


@pytest.fixture(scope="module")
def service(stack: Stack, keys: dict[str, str]) -> Iterator[tuple[Service, Service]]:
    api = stack.start_api()
    bridge = stack.start("bridge")
    bridge.wait_http(f"{stack.url}/readyz", timeout=180)
    bridge.wait_log("bridge consuming")
    yield api, bridge
    assert bridge.stop() == 0, bridge.log()[-3000:]
    assert api.stop() == 0, api.log()[-3000:]


def _client(stack: Stack, key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=stack.url, timeout=60, headers={"Authorization": f"Bearer {key}"}
    )


async def _raw_upload(http: httpx.AsyncClient, content: bytes, name: str) -> dict[str, Any]:
    response = await http.post(
        "/graphql",
        data={
            "operations": json.dumps({"query": UPLOAD, "variables": {"file": None}}),
            "map": json.dumps({"0": ["variables.file"]}),
        },
        files={"0": (name, content, "audio/wav")},
    )
    body: dict[str, Any] = response.json()
    return body


async def _submit(
    http: httpx.AsyncClient, file_id: str, effects: list[Any], output: dict[str, str]
) -> str:
    data = await graphql(
        http, SUBMIT, {"input": {"fileId": file_id, "effects": effects, "output": output}}
    )
    return str(data["submitJob"]["id"])


async def _outcome(http: httpx.AsyncClient, job_id: str, timeout_s: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job: dict[str, Any] = (await graphql(http, JOB, {"id": job_id}))["job"]
        if job["status"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
            return job
        await asyncio.sleep(0.2)
    raise AssertionError(f"job {job_id} did not end within {timeout_s} s")


async def _ready_within(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(timeout=5) as http:
        while True:
            response = await http.get(f"{url}/readyz")
            if response.status_code == 200:
                return
            assert time.monotonic() < deadline, response.text
            await asyncio.sleep(0.5)


@pytest.mark.slow
def test_crafted_float_audio_to_every_format_leaves_the_workers_serving_others(
    stack: Stack, keys: dict[str, str], service: tuple[Service, Service], tmp_path: Path
) -> None:
    _api, bridge = service
    tone = write_wav(tmp_path / "tone.wav", sine(440.0, 0.5))
    crafted = _crafted()

    async def scenario() -> None:
        async with _client(stack, keys["attacker"]) as http:
            # 1. Through the front door: refused at upload, naming the first bad sample.
            for name, (audio, where) in crafted.items():
                out = io.BytesIO()
                sf.write(out, audio.T, 48_000, format="WAV", subtype="FLOAT")
                body = await _raw_upload(http, out.getvalue(), f"{name}.wav")
                error = body["errors"][0]
                assert error["extensions"]["code"] == "UNSUPPORTED_AUDIO", body
                assert where in error["message"], body

            # 2. Accepted input that the chain blows up, to every format.
            good = await upload(http, tone)
            blown = {await _submit(http, good["id"], BLOW_UP, output): output for output in OUTPUTS}
            # 3. Crafted files placed in storage behind the upload's back.
            planted: dict[str, tuple[dict[str, str], str]] = {}
            for audio, where in crafted.values():
                file = await upload(http, tone)
                blob = next((stack.data_dir / "storage" / "in").glob(f"{file['id']}.*"))
                write_wav(blob, audio)
                for output in OUTPUTS:
                    planted[await _submit(http, file["id"], PLAIN, output)] = (output, where)

            # 4. Meanwhile, another owner's job.
            async with _client(stack, keys["victim"]) as victim:
                mine = await upload(victim, tone)
                job_id = await _submit(victim, mine["id"], PLAIN, {"format": "MP3"})
                assert (await _outcome(victim, job_id))["status"] == "SUCCEEDED"

            for job_id, output in blown.items():
                job = await _outcome(http, job_id)
                if output.get("subtype", "").startswith("PCM"):
                    assert job["status"] == "SUCCEEDED", (output, job)  # clipped to full scale
                else:
                    assert job["status"] == "FAILED", (output, job)
                    assert job["error"]["code"] == "PROCESSING_FAILED", (output, job)
                    assert "the effect chain's output has a sample of" in job["error"]["message"]
            for job_id, (output, where) in planted.items():
                job = await _outcome(http, job_id)
                assert job["status"] == "FAILED", (output, job)
                assert job["error"]["code"] == "UNSUPPORTED_AUDIO", (output, job)
                assert where in job["error"]["message"], (output, job)

        await _ready_within(stack.url, 30)

    asyncio.run(scenario())
    log = bridge.log()
    assert "SIGABRT" not in log and "replacing it" not in log, log[-5000:]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _descendants(root: int) -> set[int]:
    """Every process below `root` (Ray's workers are the raylet's children, which is the
    bridge's), read from /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


@pytest.mark.slow
def test_readyz_recovers_by_itself_when_every_actor_dies(
    stack: Stack, keys: dict[str, str], service: tuple[Service, Service], tmp_path: Path
) -> None:
    """The probe left the pool with zero actors and /readyz red until a manual restart."""
    _api, bridge = service
    workers = [pid for pid in _descendants(bridge.proc.pid) if "DspWorker" in _cmdline(pid)]
    assert len(workers) == 2, workers
    for pid in workers:
        os.kill(pid, signal.SIGKILL)  # the actor processes this test's bridge started
    tone = write_wav(tmp_path / "tone.wav", sine(440.0, 0.5))

    async def scenario() -> None:
        async with _client(stack, keys["victim"]) as victim:
            mine = await upload(victim, tone)
            job_id = await _submit(victim, mine["id"], PLAIN, {"format": "WAV"})
            assert (await _outcome(victim, job_id))["status"] == "SUCCEEDED"
        await _ready_within(stack.url, 30)

    asyncio.run(scenario())
    bridge.wait_log("replacing it")
