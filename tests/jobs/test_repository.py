"""The job store against real SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from job_records import stored_file

from jobs.db import Database, lifecycle
from jobs.db import repository as repo
from jobs.db.lifecycle import NewJob
from jobs.errors import InvalidTransition, JobNotFound
from jobs.states import JobStatus


def _new(file_id: str, effects: list[Any] | None = None, message: bytes = b"m") -> NewJob:
    return NewJob(repo.new_id(), file_id, effects or [], "WAV", "FLOAT", message)


async def test_job_and_outbox_written_together(database: Database) -> None:
    f = await stored_file(database)
    async with database.transaction() as s:
        job = await repo.create_job(
            s,
            _new(f.id, effects=[{"gain": {"db": 1.0}}], message=b"m1"),
        )
    async with database.transaction() as s:
        assert (await repo.get_job(s, job.id)).status is JobStatus.QUEUED
        pending = await database.run(lifecycle.pending_outbox)
        assert [body for _, body in pending] == [b"m1"]
        await database.run(lifecycle.mark_sent, [pending[0][0]], repo.now())
    async with database.transaction() as s:
        assert await database.run(lifecycle.pending_outbox) == []


async def test_rolled_back_job_leaves_no_message(database: Database) -> None:
    f = await stored_file(database)
    with pytest.raises(RuntimeError):
        async with database.transaction() as s:
            await repo.create_job(
                s,
                _new(f.id),
            )
            raise RuntimeError("boom")
    async with database.transaction() as s:
        assert await database.run(lifecycle.pending_outbox) == []
        assert await repo.count_jobs(s) == 0


async def test_transitions_are_checked_and_stamped(database: Database) -> None:
    f = await stored_file(database)
    async with database.transaction() as s:
        job = await repo.create_job(
            s,
            _new(f.id),
        )
    async with database.transaction() as s:
        running = await repo.set_status(s, job.id, JobStatus.RUNNING)
        assert running.started_at is not None and running.finished_at is None
        done = await repo.set_status(s, job.id, JobStatus.SUCCEEDED, progress=1.0)
        assert done.finished_at is not None and done.progress == 1.0
    with pytest.raises(InvalidTransition):
        async with database.transaction() as s:
            await repo.set_status(s, job.id, JobStatus.RUNNING)
    with pytest.raises(JobNotFound):
        async with database.transaction() as s:
            await repo.get_job(s, "nope")


async def test_jobs_page_newest_first(database: Database) -> None:
    f = await stored_file(database)
    ids = []
    for _ in range(5):
        async with database.transaction() as s:
            job = await repo.create_job(
                s,
                _new(f.id),
            )
            ids.append(job.id)
    seen: list[str] = []
    cursor = None
    async with database.transaction() as s:
        while True:
            page, more = await repo.list_jobs(s, first=2, after=cursor)
            seen += [j.id for j in page]
            if not more:
                break
            cursor = repo.encode_cursor(page[-1])
    assert seen == ids[::-1]
