"""A batch's status moves with its jobs, in each job change's own transaction."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from job_records import output_file, run_to_success, stored_file

from dsp.loudness import LoudnessMeter
from jobs.album import pooled_loudness
from jobs.contract import BatchEvent, JobMessage
from jobs.db import Database
from jobs.db import repository as repo
from jobs.errors import ProcessingFailed, QuotaExceeded
from jobs.models import Batch
from jobs.outbox import BATCH, JOB, pending_outbox
from jobs.states import JobStatus
from jobs.store import JobStore, NewJob


def _batch(owner: str | None = "alice") -> Batch:
    return Batch(repo.new_id(), JobStatus.QUEUED, owner, False, None, repo.now())


def _jobs(batch: Batch, file_id: str, n: int) -> list[NewJob]:
    return [
        NewJob(repo.new_id(), file_id, [], "WAV", "FLOAT", b"m", batch.owner, batch_id=batch.id)
        for _ in range(n)
    ]


async def _batch_events(db: Database) -> list[BatchEvent]:
    rows = await db.run(pending_outbox, 1000)
    return [BatchEvent.decode(r.body) for r in rows if r.kind == BATCH]


async def test_batch_follows_its_jobs_through_the_outbox(database: Database) -> None:
    heard: list[object] = []
    store = JobStore(database, local=heard.append)
    f = await stored_file(database, "alice")
    batch = _batch()
    made = await store.submit_batch(batch, _jobs(batch, f.id, 3), most_unfinished=10)
    assert [j.batch_id for j in made] == [batch.id] * 3
    async with database.transaction() as s:
        assert [j.id for j in await repo.batch_jobs(s, batch.id)] == [j.id for j in made]
    assert await _batch_events(database) == []  # a new batch is not a change

    await run_to_success(store, made[0].id, output_file("alice"))
    await store.fail(made[1].id, ProcessingFailed("broken"))
    assert await store.cancel(made[2].id)

    events = await _batch_events(database)
    assert [(e.status, e.done, e.total, e.version) for e in events] == [
        (JobStatus.RUNNING, 0, 3, 1),
        (JobStatus.RUNNING, 1, 3, 2),
        (JobStatus.RUNNING, 2, 3, 3),
        (JobStatus.FAILED, 3, 3, 4),
    ]
    assert events[-1].progress == 1.0 and events[-1].owner == "alice"
    # Without a relay the process's own subscribers hear them too.
    assert [e for e in heard if isinstance(e, BatchEvent)] == events
    async with database.transaction() as s:
        stored = await repo.get_batch(s, batch.id)
    assert (stored.status, stored.version) == (JobStatus.FAILED, 4)
    assert stored.finished_at is not None


async def test_a_batch_is_stored_whole_or_not_at_all(database: Database) -> None:
    store = JobStore(database)
    f = await stored_file(database, "alice")
    batch = _batch()
    with pytest.raises(QuotaExceeded, match="3 more asked for"):
        await store.submit_batch(batch, _jobs(batch, f.id, 3), most_unfinished=2)
    async with database.transaction() as s:
        assert (await repo.list_batches(s))[0] == []
        assert (await repo.list_jobs(s))[0] == []
    assert await database.run(pending_outbox, 1000) == []


def _album_jobs(batch: Batch, file_id: str, n: int) -> list[NewJob]:
    jobs = []
    for _ in range(n):
        job_id = repo.new_id()
        message = JobMessage(
            job_id=job_id,
            input_key="in/a.wav",
            output_key=f"out/{job_id}.wav",
            output_format="WAV",
            output_subtype="FLOAT",
            effects=[{"normalize": {"mode": "LOUDNESS", "target": -23.0}}],
            phase="measure",
        )
        jobs.append(
            NewJob(
                job_id,
                file_id,
                [],
                "WAV",
                "FLOAT",
                message.encode(),
                batch.owner,
                batch_id=batch.id,
            )
        )
    return jobs


async def _renders(db: Database) -> list[JobMessage]:
    rows = await db.run(pending_outbox, 1000)
    messages = [JobMessage.decode(r.body) for r in rows if r.kind == JOB]
    return [m for m in messages if m.phase == "render"]


async def test_an_album_renders_once_every_file_is_measured(database: Database) -> None:
    store = JobStore(database)
    f = await stored_file(database, "alice")
    batch = replace(_batch(), album=True)
    made = await store.submit_batch(batch, _album_jobs(batch, f.id, 3), most_unfinished=10)
    loud, quiet = [1e-2] * 20, [1e-3] * 10
    await store.start(made[0].id, "dsp-0")
    await store.measured(made[0].id, batch.id, loud)
    await store.start(made[1].id, "dsp-1")
    await store.measured(made[1].id, batch.id, quiet)
    assert await _renders(database) == []  # the third file is not measured yet
    # The third ends without a measure (cancelled): the album is the other two.
    assert await store.cancel(made[2].id)
    renders = await _renders(database)
    album = pooled_loudness([loud, quiet])
    assert sorted(m.job_id for m in renders) == sorted(j.id for j in made[:2])
    assert all(m.album_lufs == pytest.approx(album) for m in renders)
    async with database.transaction() as s:
        stored = await repo.get_batch(s, batch.id)
        jobs = await repo.batch_jobs(s, batch.id)
    assert stored.album_lufs == pytest.approx(album)
    assert [j.status for j in jobs] == [JobStatus.QUEUED, JobStatus.QUEUED, JobStatus.CANCELLED]
    assert jobs[0].message == "measured: waiting for the album's other files"
    # A later change does not release the album again.
    await store.start(made[0].id, "dsp-0")
    assert len(await _renders(database)) == 2


def test_pooled_loudness_of_one_file_is_its_integrated_loudness() -> None:
    rng = np.random.default_rng(5)
    audio = (rng.standard_normal((2, 48_000 * 5)) * np.linspace(0.01, 0.3, 48_000 * 5)).astype(
        np.float32
    )
    meter = LoudnessMeter(48_000, 2)
    meter.add(audio)
    assert pooled_loudness([meter.block_powers().tolist()]) == pytest.approx(meter.integrated())
    assert pooled_loudness([]) == -math.inf
