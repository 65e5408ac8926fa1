"""The hot-path statements against real SQLite and PostgreSQL: each does what the ORM
repository would, and refuses what `jobs.states` refuses."""

from __future__ import annotations

from dataclasses import replace

import pytest
from job_records import queued_job, stored_file

from jobs.contract import AudioAnalysis
from jobs.db import Database, lifecycle
from jobs.db import repository as repo
from jobs.states import JobStatus

LEVELS = AudioAnalysis(
    peak_db=-1.0, rms_db=-12.0, loudness_lufs=-14.0, duration_seconds=1.0, clipping=False
)


async def test_submit_counts_and_reads_back(database: Database) -> None:
    f = await stored_file(database, "alice")
    async with database.connect() as conn:
        assert await lifecycle.count_unfinished(conn, "alice") == 0
        written, outbox_id = await lifecycle.insert_job(
            conn,
            job_id=repo.new_id(),
            input_file_id=f.id,
            effects=[{"gain": {"db": -3.0}}],
            output_format="WAV",
            output_subtype="FLOAT",
            message=b"body",
            owner="alice",
            at=repo.now(),
        )
        assert await lifecycle.count_unfinished(conn, "alice") == 1
        assert await lifecycle.count_unfinished(conn, None) == 0
    async with database.transaction() as s:
        # What the ORM reads back is what insert_job returned (effects JSON included).
        assert await repo.get_job(s, written.id) == written
    async with database.connect() as conn:
        pending = await lifecycle.pending_outbox(conn)
        assert pending == [(outbox_id, b"body")]
        await lifecycle.mark_sent(conn, [pending[0][0]], repo.now())
        assert await lifecycle.pending_outbox(conn) == []
        job = await lifecycle.load(conn, written.id)
        assert await lifecycle.load(conn, "nope") is None
    assert job == lifecycle.JobToRun(JobStatus.QUEUED, "alice", f.id, "a.wav")


async def test_start_progress_succeed(database: Database) -> None:
    f = await stored_file(database)
    job = await queued_job(database, f.id)
    started_at = repo.now()
    async with database.connect() as conn:
        assert await lifecycle.start(conn, job.id, "running on dsp-0", started_at)
        await lifecycle.set_progress(conn, job.id, 0.5)
    async with database.transaction() as s:
        running = await repo.get_job(s, job.id)
    assert (running.status, running.attempts, running.progress) == (JobStatus.RUNNING, 1, 0.5)
    assert running.started_at == started_at
    assert running.message == "running on dsp-0"

    output = replace(f, id=repo.new_id(), filename="a.processed.wav", role="output")
    async with database.connect() as conn:
        await lifecycle.set_analysis(conn, f.id, LEVELS)
        assert await lifecycle.succeed(
            conn, job.id, output, LEVELS, dsp_seconds=0.25, node_id="n", actor="a", at=repo.now()
        )
    async with database.transaction() as s:
        done = await repo.get_job(s, job.id)
        analyses = await repo.file_analyses(s, [f.id, output.id])
        assert (await repo.get_file(s, output.id)).role == "output"
    assert (done.status, done.output_file_id, done.progress) == (JobStatus.SUCCEEDED, output.id, 1)
    assert done.dsp_seconds == 0.25 and done.finished_at is not None
    assert analyses == {f.id: LEVELS, output.id: LEVELS}
    async with database.connect() as conn:
        # Progress of a finished job is ignored; a finished job does not start again.
        await lifecycle.set_progress(conn, job.id, 0.1)
        assert not await lifecycle.start(conn, job.id, "again", repo.now())
    async with database.transaction() as s:
        assert (await repo.get_job(s, job.id)).progress == 1


async def test_a_cancelled_job_does_not_succeed(database: Database) -> None:
    f = await stored_file(database)
    job = await queued_job(database, f.id)
    async with database.transaction() as s:
        await repo.set_status(s, job.id, JobStatus.CANCELLED)
    output = replace(f, id=repo.new_id(), role="output")
    with pytest.raises(RuntimeError):
        async with database.connect() as conn:
            ok = await lifecycle.succeed(
                conn,
                job.id,
                output,
                None,
                dsp_seconds=0.1,
                node_id=None,
                actor=None,
                at=f.created_at,
            )
            assert not ok
            raise RuntimeError("roll back, as the bridge does")
    async with database.transaction() as s:
        assert (await repo.get_job(s, job.id)).status is JobStatus.CANCELLED
        assert await repo.get_files(s, [output.id]) == {}
