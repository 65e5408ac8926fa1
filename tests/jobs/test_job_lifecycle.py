"""The hot-path statements against real SQLite and PostgreSQL: each does what the ORM
repository would, and refuses what `jobs.states` refuses, keeping nothing when it does."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from job_records import queued_job, stored_file

from jobs.contract import AudioAnalysis, Compliance
from jobs.db import Database, lifecycle
from jobs.db import repository as repo
from jobs.errors import InvalidTransition, JobNotFound, QuotaExceeded
from jobs.models import AudioFile
from jobs.states import JobStatus

LEVELS = AudioAnalysis(
    peak_db=-1.0, rms_db=-12.0, loudness_lufs=-14.0, duration_seconds=1.0, clipping=False
)


def _new(file_id: str, owner: str | None) -> lifecycle.NewJob:
    return lifecycle.NewJob(
        repo.new_id(), file_id, [{"gain": {"db": -3.0}}], "WAV", "FLOAT", b"body", owner
    )


async def _submit(db: Database, file_id: str, owner: str | None, most: int = 10) -> int:
    new = _new(file_id, owner)
    _job, outbox_id = await db.run(lifecycle.submit, new, most_unfinished=most, at=repo.now())
    return outbox_id


async def _succeed(
    db: Database,
    job_id: str,
    output: AudioFile,
    input_file_id: str,
    levels: AudioAnalysis | None = LEVELS,
    dsp_seconds: float = 0.1,
    node_id: str | None = None,
    actor: str | None = None,
    edits: tuple[tuple[float, float], ...] = (),
) -> None:
    """`lifecycle.succeed` with the same levels measured on the input and the output."""
    await db.run(
        lifecycle.succeed,
        job_id,
        output,
        levels,
        input_file_id=input_file_id,
        input_analysis=levels,
        dsp_seconds=dsp_seconds,
        node_id=node_id,
        actor=actor,
        at=repo.now(),
        edits=edits,
    )


async def test_submit_counts_and_reads_back(database: Database) -> None:
    f = await stored_file(database, "alice")
    assert await database.run(lifecycle.count_unfinished, "alice") == 0
    new = _new(f.id, "alice")
    written, outbox_id = await database.run(lifecycle.submit, new, most_unfinished=1, at=repo.now())
    assert await database.run(lifecycle.count_unfinished, "alice") == 1
    assert await database.run(lifecycle.count_unfinished, None) == 0
    async with database.transaction() as s:
        # What the ORM reads back is what submit returned (effects JSON included).
        assert await repo.get_job(s, written.id) == written
    with pytest.raises(QuotaExceeded, match="1 of your jobs"):
        await _submit(database, f.id, "alice", most=1)
    assert await _submit(database, f.id, "bob", most=1) > outbox_id  # per owner

    pending = [row_id for row_id, _ in await database.run(lifecycle.pending_outbox)]
    assert len(pending) == 2 and pending[0] == outbox_id
    await database.run(lifecycle.mark_sent, [outbox_id], repo.now())
    assert [row_id for row_id, _ in await database.run(lifecycle.pending_outbox)] == pending[1:]
    job = await database.run(lifecycle.load, written.id)
    assert job == lifecycle.JobToRun(JobStatus.QUEUED, "alice", f.id, "a.wav")
    assert await database.run(lifecycle.load, "nope") is None


async def test_start_progress_succeed(database: Database) -> None:
    f = await stored_file(database)
    job = await queued_job(database, f.id)
    started_at = repo.now()
    await database.run(lifecycle.start, job.id, "running on dsp-0", started_at)
    await database.run(lifecycle.set_progress, job.id, 0.5)
    async with database.transaction() as s:
        running = await repo.get_job(s, job.id)
    assert (running.status, running.attempts, running.progress) == (JobStatus.RUNNING, 1, 0.5)
    assert running.started_at == started_at
    assert running.message == "running on dsp-0"

    output = replace(f, id=repo.new_id(), filename="a.processed.wav", role="output")
    assert running.edits == ()
    cuts = ((1.25, 2.5), (7.0, 9.125))
    await _succeed(
        database, job.id, output, f.id, dsp_seconds=0.25, node_id="n", actor="a", edits=cuts
    )
    async with database.transaction() as s:
        done = await repo.get_job(s, job.id)
        analyses = await repo.file_analyses(s, [f.id, output.id])
        assert (await repo.get_file(s, output.id)).role == "output"
    assert (done.status, done.output_file_id, done.progress) == (JobStatus.SUCCEEDED, output.id, 1)
    assert done.dsp_seconds == 0.25 and done.finished_at is not None
    assert done.edits == cuts
    assert analyses == {f.id: LEVELS, output.id: LEVELS}
    # Progress of a finished job is ignored; a finished job does not start again.
    await database.run(lifecycle.set_progress, job.id, 0.1)
    with pytest.raises(InvalidTransition, match="SUCCEEDED job cannot become RUNNING"):
        await database.run(lifecycle.start, job.id, "again", repo.now())
    with pytest.raises(JobNotFound):
        await database.run(lifecycle.start, "nope", "again", repo.now())
    async with database.transaction() as s:
        assert (await repo.get_job(s, job.id)).progress == 1


async def test_a_cancelled_job_does_not_succeed_and_keeps_nothing(database: Database) -> None:
    f = await stored_file(database)
    job = await queued_job(database, f.id)
    async with database.transaction() as s:
        await repo.set_status(s, job.id, JobStatus.CANCELLED)
    output = replace(f, id=repo.new_id(), role="output")

    with pytest.raises(InvalidTransition, match="CANCELLED job cannot become SUCCEEDED"):
        await _succeed(database, job.id, output, f.id)
    with pytest.raises(JobNotFound):
        await _succeed(database, "nope", output, f.id)
    async with database.transaction() as s:
        assert (await repo.get_job(s, job.id)).status is JobStatus.CANCELLED
        assert await repo.get_files(s, [output.id]) == {}  # the output row was rolled back
        assert await repo.file_analyses(s, [f.id]) == {}  # and so were the input's levels


async def test_outputs_past_2_gib_keep_their_sizes(database: Database) -> None:
    """A 4 h stereo float output: 5.5 GB and 691 M frames; 192 kHz passes 2^31 frames."""
    f = await stored_file(database)
    job = await queued_job(database, f.id)
    await database.run(lifecycle.start, job.id, "running", repo.now())
    big = replace(
        f, id=repo.new_id(), role="output", frames=14_400 * 192_000, size_bytes=5_529_600_044
    )
    await _succeed(database, job.id, big, f.id, levels=None)
    async with database.transaction() as s:
        stored = await repo.get_file(s, big.id)
    assert (stored.frames, stored.size_bytes) == (2_764_800_000, 5_529_600_044)


async def test_concurrent_submits_never_pass_the_quota(database: Database) -> None:
    """Twenty submits at once for a quota of five, each in its own transaction (pooled
    connections on PostgreSQL): exactly five get in."""
    f = await stored_file(database, "alice")

    async def one() -> bool:
        try:
            await _submit(database, f.id, "alice", most=5)
        except QuotaExceeded:
            return False
        return True

    accepted = await asyncio.gather(*(one() for _ in range(20)))
    assert sum(accepted) == 5
    assert await database.run(lifecycle.count_unfinished, "alice") == 5


async def test_loudness_levels_and_compliance_are_kept(database: Database) -> None:
    f = await stored_file(database)
    job = await queued_job(database, f.id)
    await database.run(lifecycle.start, job.id, "running", repo.now())
    levels = AudioAnalysis.of(
        peak_db=-1.5,
        rms_db=-18.0,
        loudness_lufs=-16.02,
        duration_seconds=30.0,
        clipping=False,
        true_peak_db=-1.04,
        loudness_range_lu=6.5,
        short_term_max_lufs=-12.0,
        momentary_max_lufs=-9.5,
    )
    report = Compliance(
        integrated_lufs=-16.02,
        true_peak_db=-1.04,
        loudness_range_lu=6.5,
        target=-16.0,
        true_peak_limit=-1.0,
        passed=True,
        renders=2,
    )
    output = replace(f, id=repo.new_id(), filename="a.processed.mp3", role="output")
    await database.run(
        lifecycle.succeed,
        job.id,
        output,
        levels,
        input_file_id=f.id,
        input_analysis=None,
        dsp_seconds=0.1,
        node_id=None,
        actor=None,
        at=repo.now(),
        compliance=report,
    )
    async with database.transaction() as s:
        done = await repo.get_job(s, job.id)
        analyses = await repo.file_analyses(s, [output.id])
    assert done.compliance == report
    assert analyses == {output.id: levels}
    other = await queued_job(database, f.id)
    async with database.transaction() as s:
        assert (await repo.get_job(s, other.id)).compliance is None
