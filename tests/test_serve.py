"""`audio-engine serve`, what `make run` starts: everything in one process on defaults."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import soundfile as sf

from cli import exits
from cli.client import SUBMIT, graphql, job_events, upload
from cli.stack import ROOT, S3Server, Stack, free_port


def test_serve_runs_the_whole_system(tmp_path: Path, wav_file: Path) -> None:
    stack = Stack(tmp_path / "data", extra_env={"AUDIO_ENGINE_POOL_SIZE": "1"})
    service = stack.start("serve")
    try:
        service.wait_http(f"{stack.url}/readyz")
        service.wait_log("bridge consuming")
        # First start, no key yet: serve made an admin key and printed it once.
        match = re.search(r"\b(ae_[A-Za-z0-9_-]+)", service.log())
        assert match, service.log()[-3000:]
        key = match.group(1)
        page = httpx.get(f"{stack.url}/graphql", headers={"Accept": "text/html"})
        assert page.status_code == 200 and "graphiql" in page.text.lower()

        async def scenario() -> dict[str, object]:
            headers = {"Authorization": f"Bearer {key}"}
            async with httpx.AsyncClient(base_url=stack.url, timeout=60, headers=headers) as http:
                file = await upload(http, wav_file)
                job = await graphql(
                    http,
                    SUBMIT,
                    {"input": {"fileId": file["id"], "effects": [{"gain": {"db": -6}}]}},
                )
            return [e async for e in job_events(stack.url, job["submitJob"]["id"], key)][-1]

        last = asyncio.run(scenario())
        assert last["status"] == "SUCCEEDED"
        assert (stack.data_dir / "audio-engine.db").is_file()
        assert any((stack.data_dir / "storage" / "out").iterdir())

        # The CLI's round trip, FLAC without a sample format: the container's own default.
        chain = tmp_path / "chain.json"
        chain.write_text('[{"gain": {"db": -3}}]')
        out = tmp_path / "cli-out.flac"
        submitted = subprocess.run(
            [sys.executable, "-m", "cli.main", "submit", str(wav_file), "--chain", str(chain),
             "--server", stack.url, "--api-key", key, "--format", "FLAC", "-o", str(out),
             "--quiet"],
            cwd=ROOT, env=stack.env(), capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert submitted.returncode == 0, submitted.stderr[-3000:]
        info = sf.info(str(out))
        assert (info.format, info.subtype) == ("FLAC", "PCM_24")
    finally:
        code = service.stop()
    assert code == 0, service.log()[-3000:]


def test_serve_without_rabbitmq_says_how_to_start_it(tmp_path: Path) -> None:
    stack = Stack(
        tmp_path / "data",
        extra_env={"RABBITMQ_URL": f"amqp://guest:guest@127.0.0.1:{free_port()}/"},
    )
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "serve"],
        cwd=ROOT,
        env=stack.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == exits.UNREACHABLE
    assert "cannot reach RabbitMQ" in result.stderr
    assert "rabbitmq-server" in result.stderr


def _start(stack: Stack, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", command],
        cwd=ROOT,
        env=stack.env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("command", "case"),
    [
        ("serve", "scheme"),
        ("serve", "bucket"),
        ("serve", "unreachable"),
        ("bridge", "bucket"),
        ("api", "scheme"),
        ("api", "unreachable"),
    ],
)
def test_bad_storage_exits_with_one_line(
    tmp_path: Path, s3_server: S3Server, command: str, case: str
) -> None:
    url, env, code, text = {
        "scheme": ("gs://bucket/p", {}, exits.BAD_INPUT, "not supported: use s3://bucket/prefix"),
        "bucket": ("s3://no-such-bucket/p", {}, exits.BAD_INPUT, "no-such-bucket/p does not exist"),
        "unreachable": (
            "s3://some-bucket/p",
            {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"},
            exits.UNREACHABLE,
            "s3://some-bucket/p is not reachable",
        ),
    }[case]
    stack = Stack(tmp_path / "data", extra_env={"AUDIO_ENGINE_STORAGE_URL": url, **env})
    result = _start(stack, command)
    assert result.returncode == code, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and text in lines[0], result.stderr[-3000:]


def test_refused_credentials_exit_with_one_line(tmp_path: Path) -> None:
    # A second moto that checks signatures: our keys are unknown to it.
    strict = S3Server.start(tmp_path / "moto-auth.log", INITIAL_NO_AUTH_ACTION_COUNT="0")
    try:
        stack = Stack(
            tmp_path / "data",
            extra_env={**strict.env(), "AUDIO_ENGINE_STORAGE_URL": "s3://any-bucket/p"},
        )
        result = _start(stack, "serve")
    finally:
        strict.stop()
    assert result.returncode == exits.BAD_INPUT, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "refused our credentials" in lines[0], result.stderr[-3000:]
