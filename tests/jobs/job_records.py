"""Rows the job-store tests start from: a stored file, a queued job."""

from __future__ import annotations

from typing import Any

from jobs.db import Database
from jobs.db import repository as repo
from jobs.models import AudioFile, Job
from jobs.store import JobStore, NewJob


async def stored_file(db: Database, owner: str | None = None, role: str = "input") -> AudioFile:
    """A 1 s stereo 48 kHz WAV file row (no blob behind it)."""
    return await JobStore(db).add_file(
        AudioFile(
            repo.new_id(),
            "a.wav",
            "WAV",
            "FLOAT",
            48000,
            2,
            48000,
            1000,
            "in/a.wav",
            role,
            owner,
            repo.now(),
        ),
    )


async def queued_job(
    db: Database,
    file_id: str,
    owner: str | None = None,
    effects: list[dict[str, Any]] | None = None,
    message: bytes = b"m",
) -> Job:
    new = NewJob(repo.new_id(), file_id, effects or [], "WAV", "FLOAT", message, owner)
    return await JobStore(db).submit(new, most_unfinished=1_000_000)


def output_file(owner: str | None, key: str = "out/x.wav") -> AudioFile:
    """An output file's row as a bridge writes it (no blob behind it unless the test puts
    one at `key`)."""
    return AudioFile(
        repo.new_id(), "x.wav", "WAV", "FLOAT", 48000, 2, 48000, 1, key, "output", owner, repo.now()
    )


async def run_to_success(store: JobStore, job_id: str, output: AudioFile | None = None) -> None:
    """What a bridge does to a job that succeeds: RUNNING, then SUCCEEDED with `output`."""
    async with store.db.transaction() as s:
        job = await repo.get_job(s, job_id)
    await store.start(job_id, "dsp-test")
    await store.succeed(
        job_id,
        output or output_file(job.owner),
        None,
        input_file_id=job.input_file_id,
        input_analysis=None,
        dsp_seconds=0.01,
        node_id=None,
        actor=None,
    )
