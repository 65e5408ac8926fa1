"""The domain records the API and the bridge pass around (ORM rows never leave `jobs.db`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jobs.contract import Compliance
from jobs.states import JobStatus


@dataclass(frozen=True, slots=True)
class AudioFile:
    """A stored audio file: an upload or a job's output. The one declaration of its fields:
    the API's REST and GraphQL shapes are generated from it (`jobs.shapes`), the
    `description`s included."""

    id: str
    filename: str
    format: str = field(metadata={"description": "libsndfile container name, e.g. WAV, FLAC."})
    subtype: str = field(metadata={"description": "libsndfile sample format, e.g. PCM_16."})
    sample_rate: int
    channels: int
    frames: int
    size_bytes: int
    storage_key: str
    role: str
    owner: str | None
    created_at: datetime

    @property
    def duration_seconds(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    status: JobStatus
    progress: float
    input_file_id: str
    output_file_id: str | None
    effects: list[dict[str, Any]]
    output_format: str
    output_subtype: str
    error_code: str | None
    error_message: str | None
    message: str
    attempts: int
    owner: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    dsp_seconds: float | None
    compliance: Compliance | None = None
    node_id: str | None = None
    actor: str | None = None
    version: int = 0
    edits: tuple[tuple[float, float], ...] = ()
    """What the chain cut out, (start_s, end_s) of the input (silence); empty without cuts."""
    webhook_url: str | None = None
    """Where the job's end is POSTed (a signed webhook)."""
    export_url: str | None = None
    """Where the job's output is PUT once it SUCCEEDED."""
    batch_id: str | None = None
    segments: int = 1
    """Parts the input was rendered in, by as many actors at once (1: not split)."""


@dataclass(frozen=True, slots=True)
class Batch:
    """Jobs submitted together. Its `status` follows its jobs (`jobs.store` updates it in the
    transaction of each job's change): QUEUED while none started, RUNNING until every job
    ended, then SUCCEEDED (all did), FAILED (any did) or CANCELLED (some were, none failed).
    `album`: one loudness gain for every file (see `jobs.album`)."""

    id: str
    status: JobStatus
    owner: str | None
    album: bool
    webhook_url: str | None
    created_at: datetime
    finished_at: datetime | None = None
    version: int = 0
    album_lufs: float | None = None
    """The pooled integrated loudness of an album's files, once every file was measured."""


def batch_progress(jobs: Sequence[Job]) -> float:
    """0..1: the mean progress of a batch's jobs, an ended job counting as done."""
    done = [1.0 if job.status.terminal else job.progress for job in jobs]
    return sum(done) / len(done) if done else 1.0
