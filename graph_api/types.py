"""GraphQL output types. Built from `jobs.models` records; ORM rows never get here."""

# Strawberry types its decorators-with-arguments as returning Any.
# mypy: disable-error-code="untyped-decorator"

from __future__ import annotations

import math
from datetime import datetime
from enum import Enum
from typing import NewType

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from graph_api.auth import Principal
from graph_api.context import Context
from jobs import contract, deliveries, models
from jobs.db import repository as repo
from jobs.errors import without_paths
from jobs.formats import AudioFormat as _AudioFormat
from jobs.formats import SampleFormat as _SampleFormat
from jobs.shapes import AudioFileOut, file_out
from jobs.states import JobStatus as _JobStatus

BigInt = NewType("BigInt", int)
"""An integer past GraphQL's 32-bit `Int`: frame counts and byte sizes of long files. Sent
as a plain JSON number (exact up to 2^53, as in JavaScript); `graph_api.schema` maps it."""

BIG_INT = strawberry.scalar(
    name="BigInt",
    description="An integer beyond Int's 32 bits (frame counts, byte sizes), as a JSON number.",
    serialize=int,
    parse_value=int,
)

# The domain's own enums, registered with Strawberry (it returns the same classes).
JobStatus = _JobStatus
AudioFormat = _AudioFormat
SampleFormat = _SampleFormat
strawberry.enum(JobStatus, description="Where a job is in its life.")
strawberry.enum(
    AudioFormat, description="Output container (W64: WAV's layout for outputs over 4 GiB)."
)
strawberry.enum(SampleFormat, description="Output sample format (ignored by OGG and MP3).")


@strawberry.experimental.pydantic.type(
    model=contract.AudioAnalysis,
    all_fields=True,
    description="Levels the engine measured while a job read (input) or wrote (output) a file.",
)
class AudioAnalysis:
    """Generated from `jobs.contract.AudioAnalysis`, the fields' one declaration."""


@strawberry.experimental.pydantic.type(
    model=AudioFileOut,
    all_fields=True,
    description="A stored audio file: an upload or a job's output.",
)
class AudioFile:
    """Generated from `jobs.models.AudioFile` (through `jobs.shapes`). Only GraphQL's
    own scalar choices are written here: an ID, and 64-bit counts."""

    id: strawberry.ID
    frames: BigInt
    size_bytes: BigInt

    @strawberry.field(description="Null until a job has read (or written) the file.")
    async def analysis(self, info: Info[Context, None]) -> AudioAnalysis | None:
        async with info.context.runtime.db.transaction() as session:
            found = (await repo.file_analyses(session, [str(self.id)])).get(str(self.id))
        return None if found is None else AudioAnalysis.from_pydantic(found)  # type: ignore[attr-defined]


def file_of(file: models.AudioFile, public_url: str) -> AudioFile:
    """The GraphQL `AudioFile` of a stored file (same values as its REST shape)."""
    made: AudioFile = AudioFile.from_pydantic(file_out(file, public_url))  # type: ignore[attr-defined]
    return made


async def _file(info: Info[Context, None], file_id: str | None) -> AudioFile | None:
    if file_id is None:
        return None
    file = await info.context.files.load(file_id)
    if file is None:
        return None
    return file_of(file, info.context.runtime.settings.public_url)


@strawberry.type(description="Why a job failed.")
class JobError:
    code: str
    message: str


@strawberry.type(
    description="A `loudness` job's delivered file, decoded after encoding and measured "
    "against its spec."
)
class Compliance:
    integrated_lufs: float | None = strawberry.field(
        description="Integrated loudness of the delivered file (BS.1770-4); null if none."
    )
    true_peak_db: float | None = strawberry.field(
        description="True peak of the delivered file in dBTP."
    )
    loudness_range_lu: float | None = strawberry.field(
        description="Loudness range of the delivered file (EBU Tech 3342)."
    )
    target: float = strawberry.field(description="Integrated loudness asked for (LUFS).")
    true_peak_limit: float = strawberry.field(description="True-peak ceiling asked for (dBTP).")
    passed: bool = strawberry.field(
        description="Within 0.5 LU of the target and at or under the ceiling."
    )
    renders: int = strawberry.field(
        description="Renders it took (a lossy encode over the ceiling is rendered again with "
        "a lower limiter ceiling, at most 3)."
    )
    reason: str | None = strawberry.field(description="Why it did not pass; null if it did.")


@strawberry.type(description="A part of the input the chain cut out (silence).")
class Edit:
    start_s: float = strawberry.field(description="Seconds from the start of the input.")
    end_s: float = strawberry.field(description="Seconds from the start of the input.")


@strawberry.type(description="One attempt to deliver a webhook about a job.")
class WebhookDelivery:
    webhook_id: str = strawberry.field(description="The webhook-id header: the same on retries.")
    type: str = strawberry.field(description="job.succeeded, job.failed or job.cancelled.")
    attempt: int = strawberry.field(description="1 for the first try.")
    at: datetime
    status_code: int | None = strawberry.field(description="The receiver's answer, if any.")
    error: str | None = strawberry.field(description="Why it got no answer, or a non-2xx one.")


@strawberry.type(description="Where the PUT of a job's output to `OutputInput.url` stands.")
class Export:
    url: str
    status: str = strawberry.field(description="PENDING, DELIVERED or FAILED.")
    attempts: int
    error: str | None = strawberry.field(description="Why the last try failed.")


@strawberry.type(description="One run of an effect chain over an uploaded file.")
class Job:
    id: strawberry.ID
    status: JobStatus
    progress: float = strawberry.field(description="0..1.")
    effects: JSON = strawberry.field(description="The canonical chain, defaults filled in.")
    output_format: str
    output_subtype: str
    message: str
    attempts: int
    segments: int = strawberry.field(
        description="Segments the input is rendered in by several actors at once (1: not "
        "split; `message` then says why, when splitting was asked for)."
    )
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    record: strawberry.Private[models.Job]

    @classmethod
    def of(cls, job: models.Job) -> Job:
        return cls(
            id=strawberry.ID(job.id),
            status=job.status,
            progress=job.progress,
            effects=JSON(job.effects),
            output_format=job.output_format,
            output_subtype=job.output_subtype,
            message=without_paths(job.message),
            attempts=job.attempts,
            segments=job.segments,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            record=job,
        )

    @strawberry.field
    async def input(self, info: Info[Context, None]) -> AudioFile:
        file = await _file(info, self.record.input_file_id)
        assert file is not None, "jobs.input_file_id is a foreign key"
        return file

    @strawberry.field(description="Set once the job SUCCEEDED.")
    async def output(self, info: Info[Context, None]) -> AudioFile | None:
        return await _file(info, self.record.output_file_id)

    @strawberry.field(description="Set once a job with a `loudness` step SUCCEEDED.")
    def compliance(self) -> Compliance | None:
        found = self.record.compliance
        return None if found is None else Compliance(**found.model_dump())

    @strawberry.field(
        description="What the chain cut out of the input, in order (empty for chains "
        "without cuts, and until the job SUCCEEDED)."
    )
    def edits(self) -> list[Edit]:
        return [Edit(start_s=start, end_s=end) for start, end in self.record.edits]

    @strawberry.field(
        description="Every attempt to POST the job's webhook (`JobInput.webhookUrl`), oldest "
        "first; empty without one."
    )
    async def webhook_deliveries(self, info: Info[Context, None]) -> list[WebhookDelivery]:
        found = await info.context.runtime.db.run(deliveries.attempts_of, self.record.id)
        return [
            WebhookDelivery(
                webhook_id=a.webhook_id,
                type=a.event_type,
                attempt=a.attempt,
                at=a.at,
                status_code=a.status_code,
                error=None if a.error is None else without_paths(a.error),
            )
            for a in found
        ]

    @strawberry.field(description="The PUT to `OutputInput.url`; null without one.")
    async def export(self, info: Info[Context, None]) -> Export | None:
        found = await info.context.runtime.db.run(deliveries.state_of, self.record.id)
        if found is None:
            return None
        error = None if found.error is None else without_paths(found.error)
        return Export(url=found.url, status=found.status, attempts=found.attempts, error=error)

    @strawberry.field(description="Set when the job FAILED.")
    def error(self) -> JobError | None:
        if self.record.error_code is None:
            return None
        message = without_paths(self.record.error_message or "")
        return JobError(code=self.record.error_code, message=message)


@strawberry.type(description="A change of a job, as it happens.")
class JobEvent:
    job_id: strawberry.ID
    status: JobStatus
    progress: float
    message: str
    at: datetime

    @strawberry.field(description="The job as stored now.")
    async def job(self, info: Info[Context, None]) -> Job:
        return Job.of(await info.context.job(self.job_id))


@strawberry.type
class JobEdge:
    cursor: str
    node: Job


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type(description="A page of jobs, newest first.")
class JobConnection:
    edges: list[JobEdge]
    page_info: PageInfo


@strawberry.type(description="Jobs submitted together (`submitBatch`): one chain, many files.")
class Batch:
    id: strawberry.ID
    status: JobStatus = strawberry.field(
        description="QUEUED while no job started, RUNNING until every job ended, then "
        "SUCCEEDED (all did), FAILED (any did; the others still finished) or CANCELLED."
    )
    album: bool
    created_at: datetime
    finished_at: datetime | None
    record: strawberry.Private[models.Batch]

    @classmethod
    def of(cls, batch: models.Batch) -> Batch:
        return cls(
            id=strawberry.ID(batch.id),
            status=batch.status,
            album=batch.album,
            created_at=batch.created_at,
            finished_at=batch.finished_at,
            record=batch,
        )

    async def _jobs(self, info: Info[Context, None]) -> list[models.Job]:
        async with info.context.runtime.db.transaction() as session:
            return await repo.batch_jobs(session, self.record.id)

    @strawberry.field(description="The batch's jobs, in the order of its files.")
    async def jobs(self, info: Info[Context, None]) -> list[Job]:
        return [Job.of(job) for job in await self._jobs(info)]

    @strawberry.field(description="0..1: the mean progress of its jobs (an ended job is 1).")
    async def progress(self, info: Info[Context, None]) -> float:
        return models.batch_progress(await self._jobs(info))

    @strawberry.field(
        description="Album mode: the integrated loudness of all the files together (LUFS), "
        "once every file was measured; null before, and for a silent album."
    )
    def album_loudness_lufs(self) -> float | None:
        lufs = self.record.album_lufs
        return lufs if lufs is not None and math.isfinite(lufs) else None


@strawberry.type(description="A change of a batch (one of its jobs changed).")
class BatchEvent:
    batch_id: strawberry.ID
    status: JobStatus
    progress: float
    done: int = strawberry.field(description="Jobs that ended.")
    total: int
    at: datetime

    @strawberry.field(description="The batch as stored now.")
    async def batch(self, info: Info[Context, None]) -> Batch:
        return Batch.of(await info.context.batch(self.batch_id))


@strawberry.type
class BatchEdge:
    cursor: str
    node: Batch


@strawberry.type(description="A page of batches, newest first.")
class BatchConnection:
    edges: list[BatchEdge]
    page_info: PageInfo


@strawberry.enum(description="How a parameter's value is written.")
class ParamType(Enum):
    FLOAT = "float"
    INT = "int"
    BOOLEAN = "bool"
    ENUM = "enum"
    STRING = "string"
    LIST = "records"
    OBJECT = "record"


@strawberry.type(description="One parameter of an effect, as declared in its spec.")
class ParamDescription:
    name: str = strawberry.field(description="The GraphQL input field name.")
    description: str
    type: ParamType
    unit: str
    min: float | None = strawberry.field(description="For LIST: fewest items.")
    max: float | None = strawberry.field(description="For LIST: most items.")
    min_exclusive: bool
    max_exclusive: bool
    below_nyquist: bool = strawberry.field(description="Must be below half the sample rate.")
    allowed: str = strawberry.field(description="The range in words.")
    default: JSON | None = strawberry.field(description="Null when required or null-default.")
    required: bool
    nullable: bool
    choices: list[str]
    type_name: str | None = strawberry.field(description="GraphQL enum or input type name.")
    fields: list[ParamDescription] = strawberry.field(
        description="Item fields of a LIST, fields of an OBJECT."
    )


@strawberry.type(description="An effect of the catalog.")
class EffectDescription:
    name: str = strawberry.field(description="The EffectInput field that selects it.")
    description: str
    input_type: str
    changes_sample_rate: bool
    params: list[ParamDescription]


@strawberry.type(description="A named, validated effect chain of yours.")
class Preset:
    name: str
    effects: JSON = strawberry.field(description="The canonical chain, defaults filled in.")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, preset: repo.Preset) -> Preset:
        return cls(
            name=preset.name,
            effects=JSON(preset.effects),
            created_at=preset.created_at,
            updated_at=preset.updated_at,
        )


@strawberry.type(description="Who you are, as far as the API is concerned.")
class Viewer:
    owner: str | None = strawberry.field(description="Null when authentication is off.")
    admin: bool
    key_name: str | None
    default_webhook_url: str | None = strawberry.field(
        default=None,
        description="Where the webhooks of jobs submitted with this key and no `webhookUrl` "
        "go (setDefaultWebhookUrl).",
    )

    @classmethod
    def of(cls, principal: Principal) -> Viewer:
        return cls(
            owner=principal.owner,
            admin=principal.admin,
            key_name=principal.key_name,
            default_webhook_url=principal.webhook_url,
        )
