"""Session-wide fixtures: real RabbitMQ, real SQLite/PostgreSQL files, generated audio.

A missing service fails the run instead of skipping it (CI must not go green on nothing).
Every test gets its own queue prefix and data folder, so tests never see each other's jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from cli.stack import S3Server, free_port
from jobs.db import Database
from jobs.settings import Settings

RABBITMQ_URL = os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
POSTGRES_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


TOOLS = {
    "ffmpeg": "the loudness tests' reference meter",
    "espeak-ng": "the speech tests' speech",
    "chromium": "the browser tests",
    "docker-compose": "the compose file's validation",
}
"""Debian packages some tests run (`.ci/run` installs them); a missing one fails its tests."""


def pytest_report_header(config: pytest.Config) -> str | None:
    """Say at the top of the run which of `TOOLS` are missing, and what fails without them."""
    missing = [f"{name} ({why})" for name, why in TOOLS.items() if shutil.which(name) is None]
    if not missing:
        return None
    names = " ".join(name for name in TOOLS if shutil.which(name) is None)
    return (
        "MISSING TOOLS, their tests will fail: " + "; ".join(missing)
        + f". Install them: apt-get install {names} (bash .ci/run does it)."
    )  # fmt: skip


@pytest.fixture(scope="session", autouse=True)
def _services_up() -> None:
    if not _reachable("127.0.0.1", 5672):
        pytest.fail(
            "RabbitMQ is not reachable on 127.0.0.1:5672: start it (`rabbitmq-server -detached`)"
        )


@pytest.fixture(scope="session", autouse=True)
def _broker_left_clean() -> Iterator[None]:
    """Leave the shared RabbitMQ without this run's queues."""
    yield
    purge_test_queues()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One moto S3 server for the session; its `AWS_*` variables go into this process's
    environment (obstore reads them there, and started services inherit them)."""
    server = S3Server.start(tmp_path_factory.mktemp("moto") / "moto.log")
    saved = {key: os.environ.get(key) for key in server.env()}
    os.environ.update(server.env())
    yield server
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    server.stop()


def storage_url_for(backend: str, request: pytest.FixtureRequest) -> str:
    """'' for "local", or a fresh `s3://bucket/prefix` on the session's moto for "s3"."""
    if backend == "local":
        return ""
    server: S3Server = request.getfixturevalue("s3_server")
    return server.url()


@pytest.fixture(params=["local", "s3"])
def storage_url(request: pytest.FixtureRequest) -> str:
    return storage_url_for(request.param, request)


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[None]:
    """One local Ray for the whole session (actors and bridge tests share it)."""
    import ray

    owner = not ray.is_initialized()
    if owner:
        # With the dashboard: the observability tests read its state API and metrics.
        ray.init(
            num_cpus=2,
            namespace="audio-engine",
            include_dashboard=True,
            dashboard_host="127.0.0.1",
            dashboard_port=free_port(),
        )
    yield
    if owner:
        ray.shutdown()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings isolated to this test: own data folder, own queues."""
    return Settings(
        data_dir=tmp_path / "data",
        queue_prefix=f"test-{uuid.uuid4().hex[:10]}",
        rabbitmq_url=RABBITMQ_URL,
        database_url="",
        progress_interval_s=0.05,
    )


@pytest.fixture(params=["sqlite", "postgresql"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated, empty database: a fresh SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'test.db'}")
        await db.migrate()
        yield db
        await db.close()
        return
    if not _reachable("127.0.0.1", 5432):
        pytest.fail("PostgreSQL is not reachable on 127.0.0.1:5432")
    name = f"t_{uuid.uuid4().hex[:12]}"
    await _admin(f'CREATE DATABASE "{name}"')
    db = Database(POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}")
    await db.migrate()
    yield db
    await db.close()
    await _admin(f'DROP DATABASE "{name}" WITH (FORCE)')


async def _admin(sql: str) -> None:
    admin = Database(POSTGRES_URL)
    async with admin.engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.exec_driver_sql(sql)
    await admin.close()


def sine(
    freq: float, seconds: float, rate: int = 48_000, channels: int = 2, level_db: float = -6.0
) -> np.ndarray:
    """A (channels, frames) float32 test tone; channel k is detuned by k Hz so channels differ."""
    t = np.arange(int(seconds * rate)) / rate
    amp = 10 ** (level_db / 20)
    return np.stack([amp * np.sin(2 * np.pi * (freq + k) * t) for k in range(channels)]).astype(
        np.float32
    )


def write_wav(path: Path, audio: np.ndarray, rate: int = 48_000, subtype: str = "FLOAT") -> Path:
    sf.write(str(path), audio.T, rate, subtype=subtype)
    return path


@pytest.fixture
def wav_file(tmp_path: Path) -> Path:
    """A 1 s stereo 48 kHz float WAV: a 440 Hz tone plus seeded noise."""
    rng = np.random.default_rng(7)
    audio = sine(440.0, 1.0) + 0.05 * rng.standard_normal((2, 48_000)).astype(np.float32)
    return write_wav(tmp_path / "tone.wav", audio)


def purge_test_queues(prefixes: tuple[str, ...] = ("test-", "e2e-")) -> int:
    """Delete the queues and exchanges earlier tests left on the shared broker (quorum queues
    are not free: hundreds of them slow RabbitMQ's restart down). Returns how many queues
    went. `TEST_PURGE_QUEUES=0` skips it, for test runs that share the broker with others."""
    import threading

    import aio_pika

    def listed(what: str) -> list[str]:
        out = subprocess.run(
            ["rabbitmqctl", f"list_{what}", "-q", "name"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        ).stdout
        return [n.strip() for n in out.splitlines() if n.strip().startswith(prefixes)]

    if os.environ.get("TEST_PURGE_QUEUES") == "0":
        return 0
    queues, exchanges = listed("queues"), listed("exchanges")
    deleted = 0

    async def delete() -> None:
        nonlocal deleted
        connection = await aio_pika.connect("amqp://guest:guest@127.0.0.1/", timeout=20)
        async with connection:
            channel = await connection.channel()
            for name in queues:
                try:
                    await channel.queue_delete(name)
                    deleted += 1
                except aio_pika.exceptions.AMQPError:
                    channel = await connection.channel()
            for name in exchanges:
                try:
                    await channel.exchange_delete(name)
                except aio_pika.exceptions.AMQPError:
                    channel = await connection.channel()

    # Its own thread and loop: callers may be inside pytest-asyncio's running loop.
    thread = threading.Thread(target=lambda: asyncio.run(delete()))
    thread.start()
    thread.join(120)
    return deleted


async def drop_topology(settings: Settings) -> None:
    """Delete the durable queues and exchanges of `settings`' prefix, so RabbitMQ does not
    fill up with one test's leftovers."""
    import aio_pika

    connection = await aio_pika.connect(settings.rabbitmq_url)
    async with connection:
        for queue in (settings.jobs_queue, settings.dead_letter_queue):
            with contextlib.suppress(Exception):
                await (await connection.channel()).queue_delete(queue)
        for exchange in (
            settings.events_exchange,
            settings.control_exchange,
            settings.dead_letter_exchange,
        ):
            with contextlib.suppress(Exception):
                await (await connection.channel()).exchange_delete(exchange)


class _Spans:
    """The spans this process records while a test listens (`spans` fixture)."""

    def __init__(self) -> None:
        self.exporter: Any = None
        self.listening = False


_SPANS = _Spans()


@pytest.fixture
def spans() -> Iterator[Any]:
    """The SDK's `InMemorySpanExporter`, fed by this process's tracer provider while the test
    runs (installed once per session: OpenTelemetry takes one global provider per process;
    between tests it records nothing)."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    if _SPANS.exporter is None:
        exporter = InMemorySpanExporter()
        simple = SimpleSpanProcessor(exporter)

        class WhileListening(SpanProcessor):
            def on_end(self, span: ReadableSpan) -> None:
                if _SPANS.listening:
                    simple.on_end(span)

        provider = TracerProvider()
        provider.add_span_processor(WhileListening())
        trace.set_tracer_provider(provider)
        assert trace.get_tracer_provider() is provider, "a provider was installed before"
        _SPANS.exporter = exporter
    _SPANS.exporter.clear()
    _SPANS.listening = True
    try:
        yield _SPANS.exporter
    finally:
        _SPANS.listening = False
        _SPANS.exporter.clear()
