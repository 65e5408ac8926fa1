"""`AudioFile.analysis`: levels the engine measured while a job read its input and wrote its
output, through the API, RabbitMQ, a bridge and a real Ray actor."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_client import gql, uploaded

from bridge.service import Bridge
from tests.conftest import sine, write_wav

SUBMIT = "mutation($input: JobInput!) { submitJob(input: $input) { id } }"
ANALYSIS = "analysis { peakDb rmsDb loudnessLufs durationSeconds clipping dcOffset }"
JOB = f"""
query($id: ID!) {{
  job(id: $id) {{ status error {{ code message }} input {{ {ANALYSIS} }} output {{ {ANALYSIS} }} }}
}}
"""
FILE = f"query($id: ID!) {{ file(id: $id) {{ {ANALYSIS} }} }}"


async def _finished(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    for _ in range(600):
        body = await gql(client, JOB, {"id": job_id})
        job: dict[str, Any] = body["data"]["job"]
        if job["status"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
            return job
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish")


async def test_input_and_output_analysis_after_a_job(
    client: httpx.AsyncClient, bridge: Bridge, tmp_path: Path
) -> None:
    path = write_wav(tmp_path / "minus6.wav", sine(997.0, 2.0, level_db=-6.0))
    file = await uploaded(client, path)
    before = await gql(client, FILE, {"id": file["id"]})
    assert before["data"]["file"]["analysis"] is None  # nothing has read it yet

    effects = [{"gain": {"db": 9.0}}]  # -6 dBFS + 9 dB = +3 dBFS: over full scale
    body = await gql(
        client,
        SUBMIT,
        {"input": {"fileId": file["id"], "effects": effects, "output": {"subtype": "FLOAT"}}},
    )
    assert "errors" not in body, body
    job = await _finished(client, body["data"]["submitJob"]["id"])
    assert job["status"] == "SUCCEEDED", job

    source = job["input"]["analysis"]
    assert source["peakDb"] == pytest.approx(-6.0, abs=0.01)
    assert source["rmsDb"] == pytest.approx(-9.01, abs=0.05)
    assert -12.0 < source["loudnessLufs"] < -5.0
    assert source["durationSeconds"] == pytest.approx(2.0)
    assert source["clipping"] is False
    assert source["dcOffset"] == pytest.approx(0.0, abs=1e-4)  # a tone has no DC

    output = job["output"]["analysis"]
    assert output["peakDb"] == pytest.approx(3.0, abs=0.01)
    assert output["loudnessLufs"] == pytest.approx(source["loudnessLufs"] + 9.0, abs=0.05)
    assert output["clipping"] is True  # FLOAT keeps samples over full scale
    after = await gql(client, FILE, {"id": file["id"]})
    assert after["data"]["file"]["analysis"] == source
