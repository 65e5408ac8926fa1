"""Bridge tests: a real local Ray (shared with tests/actors if both run), one warm pool for
the session, real RabbitMQ and a fresh SQLite file and queue prefix per test.

Pool actors reserve a quarter CPU each so these pools fit next to the actor tests' pool on
a 2-CPU Ray.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aio_pika
import pytest

from actors.pool import ActorPool
from bridge.service import Bridge
from jobs.broker import HEARTBEAT_TYPE, Broker
from jobs.contract import BridgeHeartbeat, JobEvent, JobMessage
from jobs.db import Database
from jobs.db import repository as repo
from jobs.models import AudioFile, Job
from jobs.probe import probe
from jobs.settings import Settings
from jobs.states import JobStatus
from jobs.store import JobStore, NewJob


@pytest.fixture(scope="session")
def shared_storage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bridge-storage")


def pool_settings(base: Settings, storage: Path, **update: Any) -> Settings:
    return base.model_copy(
        update={"storage_dir": storage, "actor_num_cpus": 0.25, "block_frames": 4096, **update}
    )


@pytest.fixture(scope="session")
async def shared_pool(ray_cluster: None, shared_storage: Path) -> AsyncIterator[ActorPool]:
    settings = pool_settings(Settings(queue_prefix="test-bridge-pool"), shared_storage, pool_size=2)
    pool = await ActorPool.start(settings)
    yield pool
    await pool.shutdown()


@pytest.fixture
def bridge_settings(settings: Settings, shared_storage: Path) -> Settings:
    return pool_settings(settings, shared_storage)


class Harness:
    """A running bridge plus what a test needs around it: the database, a publisher and
    the events and heartbeats the bridge published."""

    def __init__(self, settings: Settings, bridge: Bridge, db: Database, broker: Broker) -> None:
        self.settings = settings
        self.bridge = bridge
        self.db = db
        self.broker = broker
        # The test's own changes: written with their events, which the bridge's relay polls.
        self.store = JobStore(db)
        self.events: list[JobEvent] = []
        self.heartbeats: list[BridgeHeartbeat] = []

    @property
    def storage(self) -> Path:
        return self.settings.storage_path

    async def add_input(self, name: str, source: Path) -> AudioFile:
        key = f"in/{repo.new_id()}-{name}"
        path = self.storage / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(source.read_bytes())
        try:
            info = probe(path)
            fmt, sub, rate, ch, frames = (
                info.format,
                info.subtype,
                info.sample_rate,
                info.channels,
                info.frames,
            )
        except Exception:
            fmt, sub, rate, ch, frames = "WAV", "FLOAT", 48_000, 2, 1
        file = AudioFile(
            repo.new_id(), name, fmt, sub, rate, ch, frames, path.stat().st_size, key,
            "input", None, repo.now(),
        )  # fmt: skip
        return await self.store.add_file(file)

    async def create_job(
        self, file: AudioFile, effects: list[dict[str, Any]], **kw: Any
    ) -> JobMessage:
        job_id = repo.new_id()
        message = JobMessage(
            job_id=job_id,
            input_key=file.storage_key,
            output_key=f"out/{job_id}.wav",
            output_format="WAV",
            output_subtype="FLOAT",
            effects=effects,
            **kw,
        )
        new = NewJob(job_id, file.id, effects, "WAV", "FLOAT", message.encode())
        await self.store.submit(new, most_unfinished=1_000_000)
        return message

    async def submit(self, file: AudioFile, effects: list[dict[str, Any]], **kw: Any) -> JobMessage:
        message = await self.create_job(file, effects, **kw)
        await self.broker.publish_job(message.encode())
        return message

    async def job(self, job_id: str) -> Job:
        async with self.db.transaction() as s:
            return await repo.get_job(s, job_id)

    async def wait_for(self, job_id: str, *statuses: JobStatus, polls: int = 1200) -> Job:
        wanted = statuses or tuple(JobStatus(s) for s in ("SUCCEEDED", "FAILED", "CANCELLED"))
        for _ in range(polls):
            job = await self.job(job_id)
            if job.status in wanted:
                return job
            await asyncio.sleep(0.05)
        raise AssertionError(f"job {job_id} stayed {job.status}")

    async def ready_messages(self, queue: str) -> int:
        channel = await self.broker.connection.channel()
        try:
            declared = await channel.declare_queue(queue, passive=True)
            return int(declared.declaration_result.message_count or 0)
        finally:
            await channel.close()


@pytest.fixture
async def harness(bridge_settings: Settings, shared_pool: ActorPool) -> AsyncIterator[Harness]:
    async with RunningBridge(bridge_settings, shared_pool) as h:
        yield h


class RunningBridge:
    """Start a bridge (with a side database handle, publisher and event listener); stop it
    and delete the test's queues and exchanges afterwards."""

    def __init__(self, settings: Settings, pool: ActorPool, start: bool = True) -> None:
        self.settings = settings
        self.pool = pool
        self.start = start

    async def __aenter__(self) -> Harness:
        settings = self.settings
        self.db = Database(settings.sqlalchemy_url)
        await self.db.migrate()
        self.broker = await Broker.connect(settings)
        self.bridge = Bridge(settings, pool=self.pool, stop_grace_s=5.0, recovery_grace_s=0.5)
        self.harness = Harness(settings, self.bridge, self.db, self.broker)
        events = await self.broker.channel.declare_queue(exclusive=True, auto_delete=True)
        await events.bind(self.broker.topology.events)

        async def collect(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            if message.type == HEARTBEAT_TYPE:
                self.harness.heartbeats.append(BridgeHeartbeat.decode(message.body))
            else:
                self.harness.events.append(JobEvent.decode(message.body))

        await events.consume(collect, no_ack=True)
        if self.start:
            await self.bridge.start()
        return self.harness

    async def __aexit__(self, *exc: object) -> None:
        await self.bridge.stop()
        channel = await self.broker.connection.channel()
        s = self.settings
        for queue in (s.jobs_queue, s.dead_letter_queue):
            await channel.queue_delete(queue)
        for exchange in (s.dead_letter_exchange, s.events_exchange, s.control_exchange):
            await channel.exchange_delete(exchange)
        await self.broker.close()
        await self.db.close()
