"""A stack of real service processes: `audio-engine api|bridge|serve` started as subprocesses
sharing one data folder, queue prefix and ports. End-to-end and fault tests and the
benchmarks drive the system through it, as a user would.

>>> stack = Stack(Path("/tmp/run/data"))                    # doctest: +SKIP
>>> api = stack.start("api", "--dev"); api.wait_http(f"{stack.url}/healthz")
>>> bridge = stack.start("bridge"); bridge.wait_log("bridge consuming")
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from jobs.settings import Settings
from jobs.storage import Storage, open_storage

ROOT = Path(__file__).resolve().parents[1]


# Below the kernel's ephemeral range (32768-60999), where every Ray process takes its ports
# (workers included, `min_worker_port=0`), and above Ray Client's 23000-24000: a port chosen
# here is not taken by a Ray started after the choice and before the service binds it.
FREE_PORTS = range(24_000, 32_000)


def free_port() -> int:
    import random
    import socket

    for _ in range(100):
        port = random.choice(FREE_PORTS)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {FREE_PORTS}")


@dataclass
class Stack:
    """The shared environment of one system under test: API and bridges started from it see
    the same database, storage and queues."""

    data_dir: Path
    prefix: str = field(default_factory=lambda: f"e2e-{uuid.uuid4().hex[:8]}")
    api_port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)
    storage_url: str = ""
    """'' for the local folder under data_dir, or `s3://bucket/prefix` (see `S3Server`)."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def storage(self) -> Storage:
        """The stack's blob store, as its services open it."""
        return open_storage(Settings(data_dir=self.data_dir, storage_url=self.storage_url))

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AUDIO_ENGINE_", "RAY_AD"))}
        env.update(
            AUDIO_ENGINE_DATA_DIR=str(self.data_dir),
            AUDIO_ENGINE_QUEUE_PREFIX=self.prefix,
            AUDIO_ENGINE_API_PORT=str(self.api_port),
            AUDIO_ENGINE_RAY_DASHBOARD_PORT=str(free_port()),
            AUDIO_ENGINE_PROGRESS_INTERVAL_S="0.05",
            # Nothing under test reads it; `extra_env` turns it back on.
            AUDIO_ENGINE_RAY_DASHBOARD="false",
            PYTHONUNBUFFERED="1",
        )
        if self.storage_url:
            env["AUDIO_ENGINE_STORAGE_URL"] = self.storage_url
        env.update(self.extra_env)
        return env

    def delete_broker_objects(self) -> None:
        """Remove the stack's queues and exchanges (durable: they outlive its services, and
        quorum queues left on a shared broker slow it down)."""
        import aio_pika

        settings = Settings(queue_prefix=self.prefix)

        async def delete() -> None:
            connection = await aio_pika.connect_robust(settings.rabbitmq_url)
            try:
                channel = await connection.channel()
                for queue in (settings.jobs_queue, settings.dead_letter_queue):
                    await channel.queue_delete(queue)
                exchanges = (
                    settings.dead_letter_exchange,
                    settings.events_exchange,
                    settings.control_exchange,
                )
                for exchange in exchanges:
                    await channel.exchange_delete(exchange)
            finally:
                await connection.close()

        asyncio.run(delete())

    def create_key(self, name: str = "tester", admin: bool = True) -> str:
        """Make an API key with `audio-engine keys create` on this stack's database."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = ["keys", "create", "--name", name] + (["--admin"] if admin else [])
        result = subprocess.run(
            [sys.executable, "-m", "cli.main", *args],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            check=True,
        )
        match = re.search(r"\b(ae_\S+)", result.stdout)
        assert match, result.stdout
        return match.group(1)

    def start_api(self, *args: str) -> Service:
        """`audio-engine api ARGS`, once it answers `/healthz`."""
        service = self.start("api", *args)
        service.wait_http(f"{self.url}/healthz")
        return service

    def start(self, command: str, *args: str, log_name: str | None = None) -> Service:
        log_path = self.data_dir.parent / f"{log_name or command}-{uuid.uuid4().hex[:6]}.log"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = log_path.open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", command, *args],
            cwd=ROOT,
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return Service(proc, log_path)


@dataclass
class Service:
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_http(self, url: str, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"service exited {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise TimeoutError(f"{url} not ready after {timeout}s:\n{self.log()[-5000:]}")

    def wait_log(self, text: str, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"service exited {self.proc.returncode}:\n{self.log()}")
            time.sleep(0.3)
        raise TimeoutError(f"{text!r} not logged after {timeout}s:\n{self.log()[-5000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL the whole process group (the bridge and the Ray it started)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@dataclass
class S3Server:
    """moto's standalone S3-protocol server (`moto_server`) on 127.0.0.1: a real HTTP store
    the obstore client talks to exactly as it would to MinIO or AWS."""

    proc: subprocess.Popen[bytes]
    endpoint: str
    bucket: str = ""

    @classmethod
    def start(cls, log_path: Path, **env: str) -> S3Server:
        port = free_port()
        binary = Path(sys.executable).with_name("moto_server")
        proc = subprocess.Popen(
            [str(binary), "-H", "127.0.0.1", "-p", str(port)],
            env={**os.environ, **env},
            stdout=log_path.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        server = cls(proc, f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert proc.poll() is None, log_path.read_text()[-2000:]
            try:
                httpx.get(f"{server.endpoint}/moto-api/", timeout=2)
            except httpx.HTTPError:
                time.sleep(0.1)
                continue
            if not env:  # a strict server (checking keys) gets no bucket
                server.bucket = server.new_bucket()
            return server
        proc.kill()
        raise RuntimeError(f"moto_server did not answer on {server.endpoint}")

    def env(self) -> dict[str, str]:
        """The standard variables every client (obstore, boto3, the services) reads."""
        return {**S3_ENV, "AWS_ENDPOINT_URL": self.endpoint, "AWS_REGION": "us-east-1"}

    def url(self) -> str:
        """A fresh prefix in the session's bucket, for one stack or test."""
        return f"s3://{self.bucket}/{uuid.uuid4().hex[:8]}"

    def new_bucket(self) -> str:
        name = f"test-{uuid.uuid4().hex[:12]}"
        self._client().create_bucket(Bucket=name)
        return name

    def put(self, bucket: str, key: str, body: bytes) -> None:
        """Store an object, as another system sharing the endpoint would."""
        self._client().put_object(Bucket=bucket, Key=key, Body=body)

    def _client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=S3_ENV["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=S3_ENV["AWS_SECRET_ACCESS_KEY"],
        )

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
