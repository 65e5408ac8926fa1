"""Rows the job-store tests start from: a stored file, a queued job."""

from __future__ import annotations

from typing import Any

from jobs.db import Database
from jobs.db import repository as repo
from jobs.db.lifecycle import NewJob
from jobs.models import AudioFile, Job


async def stored_file(db: Database, owner: str | None = None, role: str = "input") -> AudioFile:
    """A 1 s stereo 48 kHz WAV file row (no blob behind it)."""
    async with db.transaction() as s:
        return await repo.add_file(
            s,
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
    async with db.transaction() as s:
        return await repo.create_job(
            s,
            NewJob(
                job_id=repo.new_id(),
                input_file_id=file_id,
                effects=effects or [],
                output_format="WAV",
                output_subtype="FLOAT",
                message=message,
                owner=owner,
            ),
        )
