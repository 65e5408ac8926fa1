"""Fault injection with real processes: nothing lost, nothing done twice.

Each test prints its figures (submitted, succeeded, failed with reasons, duplicates, lost).
They are slow (processes restart, Ray starts again) and run in CI all the same.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import websockets
from sqlalchemy import func, select

from cli.client import SUBMIT, graphql, job_events, upload
from cli.stack import Service, Stack
from jobs.db import Database
from jobs.db.tables import FileRow, JobRow
from tests.conftest import POSTGRES_URL, _admin, purge_test_queues, storage_url_for, write_wav

pytestmark = pytest.mark.slow

FAULT_ENV = {"AUDIO_ENGINE_POOL_SIZE": "2", "AUDIO_ENGINE_MAX_QUEUED_JOBS_PER_OWNER": "1000"}
# Seconds of work per run, so a test can see it RUNNING and crash the bridge holding it.
SLOW_CHAIN: list[dict[str, object]] = [
    {"reverb": {"impulse": "hall", "mix": 0.5}},
    {"compressor": {"thresholdDb": -30}},
]
SHORT_CHAIN: list[dict[str, object]] = [
    {"gain": {"db": -1.0}},
    {"eq": {"bands": [{"kind": "LOWSHELF", "frequency": 200}]}},
]


def _tone(path: Path, seconds: float = 0.25) -> Path:
    rng = np.random.default_rng(11)
    return write_wav(path, 0.2 * rng.standard_normal((1, int(48_000 * seconds))).astype(np.float32))


async def _submit_many(
    url: str,
    file_id: str,
    count: int,
    concurrency: int = 8,
    chain: list[dict[str, object]] = SHORT_CHAIN,
) -> list[str]:
    """Submit `count` jobs; retry a refused HTTP call (the API restarts nothing here, but the
    broker may be away: submitJob must still answer)."""
    ids: list[str] = []
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:

        async def one() -> None:
            async with gate:
                data = await graphql(http, SUBMIT, {"input": {"fileId": file_id, "effects": chain}})
                assert data["submitJob"]["status"] == "QUEUED"
                ids.append(data["submitJob"]["id"])

        await asyncio.gather(*(one() for _ in range(count)))
    return ids


async def _upload(url: str, path: Path) -> str:
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        return str((await upload(http, path))["id"])


class Census:
    """Counts rows and output files of a stack's jobs, straight from its database."""

    def __init__(self, stack: Stack, url: str) -> None:
        self.stack = stack
        self.url = url

    async def statuses(self, ids: list[str]) -> Counter[str]:
        db = Database(self.url)
        try:
            async with db.transaction() as s:
                rows = (await s.execute(select(JobRow.status).where(JobRow.id.in_(ids)))).all()
            return Counter(r[0] for r in rows)
        finally:
            await db.close()

    async def attempt(self, job_id: str) -> tuple[str, int]:
        db = Database(self.url)
        try:
            async with db.transaction() as s:
                row = (
                    await s.execute(
                        select(JobRow.status, JobRow.attempts).where(JobRow.id == job_id)
                    )
                ).one()
            return str(row[0]), int(row[1])
        finally:
            await db.close()

    async def report(self, ids: list[str]) -> dict[str, object]:
        db = Database(self.url)
        try:
            async with db.transaction() as s:
                jobs = (await s.scalars(select(JobRow).where(JobRow.id.in_(ids)))).all()
                outputs = int(
                    await s.scalar(
                        select(func.count()).select_from(FileRow).where(FileRow.role == "output")
                    )
                    or 0
                )
        finally:
            await db.close()
        by_status = Counter(j.status for j in jobs)
        reasons = Counter(f"{j.error_code}: {j.error_message}" for j in jobs if j.error_code)
        files = [o for o in self.stack.storage().list("out/") if not o.key.endswith(".part")]
        figures = {
            "submitted": len(ids),
            "succeeded": by_status["SUCCEEDED"],
            "failed": by_status["FAILED"],
            "failed_reasons": dict(reasons),
            "output_rows": outputs,
            "output_files": len(files),
            "duplicates": max(0, outputs - by_status["SUCCEEDED"]),
            "lost": len(ids) - len(jobs),
            "not_terminal": sum(v for k, v in by_status.items() if k in ("QUEUED", "RUNNING")),
        }
        print("\nfigures:", figures)
        return figures

    def wait(self, ids: list[str], done: Callable[[Counter[str]], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if done(asyncio.run(self.statuses(ids))):
                return
            time.sleep(0.5)
        raise TimeoutError(f"jobs did not settle: {asyncio.run(self.statuses(ids))}")


def _terminal(n: int) -> Callable[[Counter[str]], bool]:
    return lambda c: c["SUCCEEDED"] + c["FAILED"] + c["CANCELLED"] >= n


@pytest.fixture(scope="module", autouse=True)
def _few_queues() -> None:
    """These tests restart the broker: first drop the queues earlier tests left behind."""
    purge_test_queues()


@pytest.fixture(scope="module", params=["local", "s3"])
def backend(request: pytest.FixtureRequest) -> str:
    """Every fault once per storage backend: the local folder, then moto's S3."""
    return str(request.param)


@pytest.fixture
def stack(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> Stack:
    extra = getattr(request, "param", {})
    return Stack(
        tmp_path / "data",
        extra_env={**FAULT_ENV, **extra},
        storage_url=storage_url_for(backend, request),
    )


@pytest.fixture
def api(stack: Stack) -> Iterator[Service]:
    service = stack.start_api("--dev")
    yield service
    service.stop()


def _start_bridge(stack: Stack) -> Service:
    service = stack.start("bridge")
    service.wait_log("bridge consuming")
    return service


def _sqlite_url(stack: Stack) -> str:
    return f"sqlite+aiosqlite:///{(stack.data_dir / 'audio-engine.db').resolve()}"


def test_bridge_killed_twice_loses_nothing_and_repeats_nothing(
    stack: Stack, api: Service, tmp_path: Path
) -> None:
    census = Census(stack, _sqlite_url(stack))
    file_id = asyncio.run(_upload(stack.url, _tone(tmp_path / "in.wav")))
    ids = asyncio.run(_submit_many(stack.url, file_id, 120))
    bridge = _start_bridge(stack)
    try:
        for threshold in (25, 65):
            census.wait(ids, lambda c, t=threshold: c["SUCCEEDED"] >= t, timeout=300)
            bridge.kill()  # SIGKILL mid-run: in-flight messages go back to the queue
            bridge = _start_bridge(stack)
        census.wait(ids, _terminal(120), timeout=600)
    finally:
        bridge.stop()
    figures = asyncio.run(census.report(ids))
    assert figures["succeeded"] == 120, figures
    assert figures["lost"] == 0
    assert figures["duplicates"] == 0
    assert figures["output_rows"] == 120
    assert figures["output_files"] == 120


def test_broker_stopped_during_submissions(stack: Stack, api: Service, tmp_path: Path) -> None:
    census = Census(stack, _sqlite_url(stack))
    bridge = _start_bridge(stack)
    file_id = asyncio.run(_upload(stack.url, _tone(tmp_path / "in.wav")))
    ids = asyncio.run(_submit_many(stack.url, file_id, 50))
    subprocess.run(["rabbitmqctl", "stop_app"], check=True, capture_output=True)
    watcher: concurrent.futures.Future[list[dict[str, object]]] | None = None
    pool = concurrent.futures.ThreadPoolExecutor(1)
    try:
        # The broker is away: submissions are still accepted (the outbox holds them).
        ids += asyncio.run(_submit_many(stack.url, file_id, 25))
        # A subscriber that started during the outage hears the outcome once it is back.
        watcher = pool.submit(lambda: asyncio.run(_collect(stack.url, ids[-1])))
        time.sleep(5)
        ids += asyncio.run(_submit_many(stack.url, file_id, 25))
    finally:
        subprocess.run(["rabbitmqctl", "start_app"], check=True, capture_output=True)
    try:
        census.wait(ids, _terminal(100), timeout=300)
        assert watcher is not None
        events = watcher.result(timeout=120)
    finally:
        pool.shutdown(wait=False)
        assert bridge.stop() == 0, bridge.log()[-3000:]
    figures = asyncio.run(census.report(ids))
    assert figures["submitted"] == 100
    assert figures["succeeded"] == 100, figures
    assert figures["duplicates"] == 0
    assert events[0]["status"] == "QUEUED"
    assert events[-1]["status"] == "SUCCEEDED"


async def _collect(url: str, job_id: str) -> list[dict[str, object]]:
    return [event async for event in job_events(url, job_id)]


def test_api_sigterm_closes_subscriptions_cleanly(
    stack: Stack, api: Service, tmp_path: Path
) -> None:
    """No bridge runs, so the job stays QUEUED and its subscription stays open until the API
    is told to stop: the client must see a proper close frame, the process exit 0."""
    file_id = asyncio.run(_upload(stack.url, _tone(tmp_path / "in.wav")))
    [job_id] = asyncio.run(_submit_many(stack.url, file_id, 1))

    async def scenario() -> tuple[str, int | None]:
        url = stack.url.replace("http", "ws", 1) + "/graphql"
        async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
            await ws.send(json.dumps({"type": "connection_init"}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            query = "subscription ($id: ID!) { jobUpdates(jobId: $id) { status } }"
            payload = {"query": query, "variables": {"id": job_id}}
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
            first = json.loads(await ws.recv())
            api.proc.send_signal(signal.SIGTERM)
            try:
                while True:
                    await asyncio.wait_for(ws.recv(), 30)
            except websockets.ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd is not None else None
            return first["payload"]["data"]["jobUpdates"]["status"], code

    status, code = asyncio.run(scenario())
    assert status == "QUEUED"
    assert code in (1000, 1001, 1012), code
    assert api.proc.wait(60) == 0, api.log()[-3000:]


@pytest.mark.parametrize(
    "stack",
    # One redelivery is the limit: each one costs a bridge (and Ray) start.
    [{"AUDIO_ENGINE_BLOCK_FRAMES": "2048", "AUDIO_ENGINE_DELIVERY_LIMIT": "1"}],
    indirect=True,
    ids=["small-blocks"],
)
def test_message_that_keeps_crashing_the_bridge_is_dead_lettered(
    stack: Stack, api: Service, tmp_path: Path
) -> None:
    """The bridge dies every time it holds the poison job; after the delivery limit RabbitMQ
    dead-letters it, the job ends FAILED DELIVERY_LIMIT, and later jobs run normally."""
    census = Census(stack, _sqlite_url(stack))
    long_input = _tone(tmp_path / "long.wav", seconds=300.0)
    poison_file = asyncio.run(_upload(stack.url, long_input))
    [poison] = asyncio.run(_submit_many(stack.url, poison_file, 1, chain=SLOW_CHAIN))
    bridge = _start_bridge(stack)
    crashes = 0
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            status, attempts = asyncio.run(census.attempt(poison))
            if status == "FAILED":
                break
            if status == "RUNNING" and attempts > crashes:
                # A fresh run of the poison job has started: crash the bridge holding it.
                bridge.kill()
                crashes += 1
                bridge = _start_bridge(stack)
            time.sleep(0.2)
        good_file = asyncio.run(_upload(stack.url, _tone(tmp_path / "in.wav")))
        good = asyncio.run(_submit_many(stack.url, good_file, 5))
        census.wait(good, _terminal(5), timeout=120)
    finally:
        bridge.stop()
    figures = asyncio.run(census.report([poison, *good]))
    _, attempts = asyncio.run(census.attempt(poison))
    print("crashes:", crashes, "attempts:", attempts)
    assert figures["failed"] == 1
    [reason] = figures["failed_reasons"]  # type: ignore[misc]
    assert reason.startswith("DELIVERY_LIMIT")
    # The first delivery and the one redelivery the limit allows each started the job.
    assert attempts == 2 and crashes >= 1
    assert figures["succeeded"] == 5


def test_postgres_restart_loses_no_job(tmp_path: Path) -> None:
    name = f"t_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    url = POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    stack = Stack(tmp_path / "data", extra_env={**FAULT_ENV, "DATABASE_URL": url})
    api = stack.start("api", "--dev")
    bridge: Service | None = None
    try:
        api.wait_http(f"{stack.url}/healthz")
        census = Census(stack, url)
        file_id = asyncio.run(_upload(stack.url, _tone(tmp_path / "in.wav", seconds=2.0)))
        ids = asyncio.run(_submit_many(stack.url, file_id, 60))
        bridge = _start_bridge(stack)
        census.wait(ids, lambda c: c["SUCCEEDED"] >= 10, timeout=300)
        version = subprocess.run(["ls", "/etc/postgresql"], capture_output=True, text=True)
        subprocess.run(
            [
                "pg_ctlcluster",
                "--skip-systemctl-redirect",
                version.stdout.split()[0],
                "main",
                "restart",
            ],
            check=True,
            capture_output=True,
        )
        census.wait(ids, _terminal(60), timeout=300)
        # The API reconnected too: new submissions go through without a restart.
        ids += asyncio.run(_submit_many(stack.url, file_id, 5))
        census.wait(ids, _terminal(65), timeout=120)
        figures = asyncio.run(census.report(ids))
        assert figures["succeeded"] == 65, figures
        assert figures["lost"] == 0 and figures["not_terminal"] == 0
        assert figures["duplicates"] == 0
    finally:
        if bridge is not None:
            bridge.stop()
        api.stop()
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
