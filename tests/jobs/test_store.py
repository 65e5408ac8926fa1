"""The job store against real SQLite and PostgreSQL: each transition changes the row only
from the states `jobs.states` allows, writes its event to the outbox in the same
transaction, and keeps nothing when it refuses."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from job_records import queued_job, stored_file

from jobs.contract import AudioAnalysis, Compliance, JobEvent
from jobs.db import Database
from jobs.db import repository as repo
from jobs.errors import (
    DeliveryLimit,
    InvalidTransition,
    JobCancelled,
    JobNotFound,
    JobTimeout,
    QuotaExceeded,
)
from jobs.models import AudioFile, Job
from jobs.outbox import EVENT, JOB, mark_sent, pending_outbox
from jobs.states import JobStatus
from jobs.store import PROGRESS_WRITE_S, JobStore, NewJob, count_unfinished

LEVELS = AudioAnalysis(
    peak_db=-1.0, rms_db=-12.0, loudness_lufs=-14.0, duration_seconds=1.0, clipping=False
)


def _new(file_id: str, owner: str | None, body: bytes = b"body") -> NewJob:
    return NewJob(repo.new_id(), file_id, [{"gain": {"db": -3.0}}], "WAV", "FLOAT", body, owner)


async def stored_events(db: Database) -> list[JobEvent]:
    """The events the outbox holds, in the order they were committed."""
    return [
        JobEvent.decode(p.body) for p in await db.run(pending_outbox, 10_000) if p.kind == EVENT
    ]


async def _job(db: Database, job_id: str) -> Job:
    async with db.transaction() as s:
        return await repo.get_job(s, job_id)


async def _succeed(
    store: JobStore,
    job_id: str,
    output: AudioFile,
    input_file_id: str,
    levels: AudioAnalysis | None = LEVELS,
    dsp_seconds: float = 0.1,
    edits: tuple[tuple[float, float], ...] = (),
) -> JobEvent:
    """`succeed` with the same levels measured on the input and the output."""
    return await store.succeed(
        job_id,
        output,
        levels,
        input_file_id=input_file_id,
        input_analysis=levels,
        dsp_seconds=dsp_seconds,
        node_id="n",
        actor="a",
        edits=edits,
    )


async def test_submit_counts_and_reads_back(database: Database) -> None:
    store = JobStore(database)
    f = await stored_file(database, "alice")
    assert await database.run(count_unfinished, "alice") == 0
    written = await store.submit(_new(f.id, "alice", b"m1"), most_unfinished=1)
    assert await database.run(count_unfinished, "alice") == 1
    assert await database.run(count_unfinished, None) == 0
    # What the ORM reads back is what submit returned (effects JSON included).
    assert await _job(database, written.id) == written
    with pytest.raises(QuotaExceeded, match="1 of your jobs"):
        await store.submit(_new(f.id, "alice"), most_unfinished=1)
    await store.submit(_new(f.id, "bob", b"m2"), most_unfinished=1)  # per owner

    pending = await database.run(pending_outbox)
    assert [(p.kind, p.body) for p in pending] == [(JOB, b"m1"), (JOB, b"m2")]
    await database.run(mark_sent, [pending[0].id], repo.now())
    assert await database.run(pending_outbox) == pending[1:]
    job = await database.run(repo.job_to_run, written.id)
    assert job == repo.JobToRun(JobStatus.QUEUED, "alice", f.id, "a.wav", 1.0)
    assert await database.run(repo.job_to_run, "nope") is None
    assert await stored_events(database) == []  # a new job is not a change


async def test_start_progress_succeed_write_their_events(database: Database) -> None:
    heard: list[JobEvent] = []
    store = JobStore(database, local=heard.append)
    f = await stored_file(database, "alice")
    job = await queued_job(database, f.id, "alice")
    running = await store.start(job.id, "dsp-0")
    for value in (0.25, 0.5, 0.75):
        await store.progress(job.id, value)
    row = await _job(database, job.id)
    assert (row.status, row.attempts, row.message) == (JobStatus.RUNNING, 1, "running on dsp-0")
    # The row took the first tick only (at most one write a second), the events all three.
    assert row.progress == 0.25
    assert [e.progress for e in heard[1:]] == [0.25, 0.5, 0.75]
    assert all(e.version == running.version and e.owner == "alice" for e in heard)

    output = replace(f, id=repo.new_id(), filename="a.processed.wav", role="output")
    assert row.edits == ()
    cuts = ((1.25, 2.5), (7.0, 9.125))
    done = await _succeed(store, job.id, output, f.id, dsp_seconds=0.25, edits=cuts)
    row = await _job(database, job.id)
    async with database.transaction() as s:
        analyses = await repo.file_analyses(s, [f.id, output.id])
        assert (await repo.get_files(s, [output.id]))[output.id].role == "output"
    assert (row.status, row.output_file_id, row.progress) == (JobStatus.SUCCEEDED, output.id, 1)
    assert row.dsp_seconds == 0.25 and row.finished_at is not None
    assert row.edits == cuts
    assert analyses == {f.id: LEVELS, output.id: LEVELS}
    # Progress events skip the outbox; the two transitions are there, in order.
    stored = await stored_events(database)
    assert stored == [running, done] == [heard[0], heard[-1]]
    assert [(e.status, e.version, e.owner) for e in stored] == [
        (JobStatus.RUNNING, 1, "alice"),
        (JobStatus.SUCCEEDED, 2, "alice"),
    ]
    assert row.version == 2
    # Progress of a finished job is ignored; a finished job does not start again.
    await store.progress(job.id, 0.1)
    with pytest.raises(InvalidTransition, match="SUCCEEDED job cannot become RUNNING"):
        await store.start(job.id, "again")
    with pytest.raises(JobNotFound):
        await store.start("nope", "again")
    assert (await _job(database, job.id)).progress == 1
    assert len(await stored_events(database)) == 2


async def test_progress_reaches_the_row_again_after_a_second(database: Database) -> None:
    store = JobStore(database)
    f = await stored_file(database)
    job = await queued_job(database, f.id)
    await store.start(job.id, "dsp-0")
    await store.progress(job.id, 0.1)
    deadline = asyncio.get_running_loop().time() + 10 * PROGRESS_WRITE_S
    value = 0.1
    while (await _job(database, job.id)).progress == 0.1:
        assert asyncio.get_running_loop().time() < deadline, "progress never written again"
        value += 0.01
        await store.progress(job.id, value)
        await asyncio.sleep(0.05)
    assert (await _job(database, job.id)).progress > 0.1


async def test_a_cancelled_job_does_not_succeed_and_keeps_nothing(database: Database) -> None:
    store = JobStore(database)
    f = await stored_file(database)
    job = await queued_job(database, f.id)
    assert await store.cancel(job.id)
    assert not await store.cancel(job.id)  # once
    output = replace(f, id=repo.new_id(), role="output")

    with pytest.raises(InvalidTransition, match="CANCELLED job cannot become SUCCEEDED"):
        await _succeed(store, job.id, output, f.id)
    with pytest.raises(JobNotFound):
        await _succeed(store, "nope", output, f.id)
    row = await _job(database, job.id)
    assert (row.status, row.message) == (JobStatus.CANCELLED, "cancelled before it started")
    async with database.transaction() as s:
        assert await repo.get_files(s, [output.id]) == {}  # the output row was rolled back
        assert await repo.file_analyses(s, [f.id]) == {}  # and so were the input's levels
    assert [e.status for e in await stored_events(database)] == [JobStatus.CANCELLED]


async def test_fail_requeue_and_dead_letter(database: Database) -> None:
    store = JobStore(database)
    f = await stored_file(database, "bob")
    a, b, c = [await queued_job(database, f.id, "bob") for _ in range(3)]
    await store.start(a.id, "dsp-0")
    assert await store.requeue(a.id)
    assert not await store.requeue(a.id)  # only a RUNNING job goes back
    await store.start(a.id, "dsp-1")
    assert await store.fail(a.id, JobTimeout("too slow")) is JobStatus.FAILED
    # A job that ended keeps its state, and says which.
    assert await store.fail(a.id, JobCancelled("stop")) is JobStatus.FAILED
    await store.start(b.id, "dsp-0")
    assert await store.fail(b.id, JobCancelled("by its owner")) is JobStatus.CANCELLED
    await store.note(c.id, "delivery failed, retrying: db down")
    assert await store.dead_letter(c.id, DeliveryLimit("limit"), with_last=True)
    assert not await store.dead_letter(c.id, DeliveryLimit("limit"), with_last=True)
    with pytest.raises(JobNotFound):
        await store.dead_letter("nope", DeliveryLimit("limit"), with_last=True)

    rows = [await _job(database, j.id) for j in (a, b, c)]
    assert [(r.status, r.error_code, r.attempts) for r in rows] == [
        (JobStatus.FAILED, "TIMEOUT", 2),
        (JobStatus.CANCELLED, "CANCELLED", 1),
        (JobStatus.FAILED, "DELIVERY_LIMIT", 0),
    ]
    assert rows[2].error_message == "limit; last: delivery failed, retrying: db down"
    events = [(e.job_id, e.status, e.version, e.message) for e in await stored_events(database)]
    assert events == [
        (a.id, JobStatus.RUNNING, 1, "running on dsp-0"),
        (a.id, JobStatus.QUEUED, 2, "handed back to the queue"),
        (a.id, JobStatus.RUNNING, 3, "running on dsp-1"),
        (a.id, JobStatus.FAILED, 4, "TIMEOUT: too slow"),
        (b.id, JobStatus.RUNNING, 1, "running on dsp-0"),
        (b.id, JobStatus.CANCELLED, 2, "CANCELLED: by its owner"),
        (c.id, JobStatus.FAILED, 1, "DELIVERY_LIMIT: " + rows[2].error_message),
    ]


async def test_recover_requeues_from_the_stored_message_or_fails(database: Database) -> None:
    store = JobStore(database)
    f = await stored_file(database)
    a = await queued_job(database, f.id, message=b"run a")
    b = await queued_job(database, f.id, message=b"run b")
    for job in (a, b):
        await store.start(job.id, "dsp-0")
    await store.start(b.id, "dsp-0")  # its message came back once already: attempt 2
    sent = [p.id for p in await database.run(pending_outbox)]
    await database.run(mark_sent, sent, repo.now())

    assert await store.recover(a.id, attempts=2, max_attempts=2) is None  # not that attempt
    assert await store.recover(a.id, attempts=1, max_attempts=2) is JobStatus.QUEUED
    assert await store.recover(a.id, attempts=1, max_attempts=2) is None  # once
    assert await store.recover(b.id, attempts=2, max_attempts=2) is JobStatus.FAILED

    pending = await database.run(pending_outbox)
    assert [(p.kind, p.body) for p in pending if p.kind == JOB] == [(JOB, b"run a")]
    events = [(e.job_id, e.status, e.message) for e in await stored_events(database)]
    assert events == [
        (a.id, JobStatus.QUEUED, "re-queued: its message was lost with its bridge"),
        (b.id, JobStatus.FAILED, "WORKER_LOST: the bridge running the job stopped (after 2 tries)"),
    ]


async def test_outputs_past_2_gib_keep_their_sizes(database: Database) -> None:
    """A 4 h stereo float output: 5.5 GB and 691 M frames; 192 kHz passes 2^31 frames."""
    store = JobStore(database)
    f = await stored_file(database)
    job = await queued_job(database, f.id)
    await store.start(job.id, "dsp-0")
    big = replace(
        f, id=repo.new_id(), role="output", frames=14_400 * 192_000, size_bytes=5_529_600_044
    )
    await _succeed(store, job.id, big, f.id, levels=None)
    async with database.transaction() as s:
        stored = (await repo.get_files(s, [big.id]))[big.id]
    assert (stored.frames, stored.size_bytes) == (2_764_800_000, 5_529_600_044)


async def test_concurrent_submits_never_pass_the_quota(database: Database) -> None:
    """Twenty submits at once for a quota of five, each in its own transaction (pooled
    connections on PostgreSQL): exactly five get in."""
    store = JobStore(database)
    f = await stored_file(database, "alice")

    async def one() -> bool:
        try:
            await store.submit(_new(f.id, "alice"), most_unfinished=5)
        except QuotaExceeded:
            return False
        return True

    accepted = await asyncio.gather(*(one() for _ in range(20)))
    assert sum(accepted) == 5
    assert await database.run(count_unfinished, "alice") == 5


async def test_loudness_levels_and_compliance_are_kept(database: Database) -> None:
    store = JobStore(database)
    f = await stored_file(database)
    job = await queued_job(database, f.id)
    await store.start(job.id, "dsp-0")
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
    await store.succeed(
        job.id,
        output,
        levels,
        input_file_id=f.id,
        input_analysis=None,
        dsp_seconds=0.1,
        node_id=None,
        actor=None,
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
