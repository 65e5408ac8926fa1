"""Root mutations: upload, submit, cancel.

`submitJob` validates everything before writing anything, then writes the job row and its
broker message in one transaction (the outbox) and only nudges the relay: it succeeds while
RabbitMQ is down, and the message goes out once the broker is back.
"""

# Strawberry types its decorators-with-arguments as returning Any.
# mypy: disable-error-code="untyped-decorator"

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.file_uploads import Upload
from strawberry.types import Info

from graph_api.context import Context
from graph_api.inputs import JobInput, OutputInput, chain_of
from graph_api.types import AudioFile, Job
from graph_api.uploads import store_upload
from jobs.contract import ControlMessage, JobEvent, JobMessage
from jobs.db import repository as repo
from jobs.effects import chain_json, parse_chain, referenced_files
from jobs.errors import FileNotFound, InvalidTransition
from jobs.formats import output_format
from jobs.states import JobStatus as _JobStatus


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="Store an audio file (GraphQL multipart request). Codes: "
        "PAYLOAD_TOO_LARGE, UNSUPPORTED_AUDIO."
    )
    async def upload_audio(self, info: Info[Context, None], file: Upload) -> AudioFile:
        runtime = info.context.runtime
        stored = await store_upload(runtime, file)  # type: ignore[arg-type]
        return AudioFile.of(stored, runtime.settings.public_url)

    @strawberry.mutation(
        description="Queue an effect chain over an uploaded file. Codes: NOT_FOUND, "
        "BAD_INPUT, UNSUPPORTED_FORMAT."
    )
    async def submit_job(self, info: Info[Context, None], input: JobInput) -> Job:
        runtime = info.context.runtime
        settings = runtime.settings
        out = input.output or OutputInput()
        async with runtime.db.transaction() as session:
            source = await repo.get_file(session, input.file_id)
            calls = parse_chain(chain_of(input.effects), source.sample_rate)
            fmt = output_format(out.format, out.subtype)
            wanted = referenced_files(calls)
            impulses = await repo.get_files(session, wanted)
        for file_id in wanted:
            if file_id not in impulses:
                raise FileNotFound(file_id)
        job_id = repo.new_id()
        effects: list[dict[str, Any]] = chain_json(calls)
        message = JobMessage(
            job_id=job_id,
            input_key=source.storage_key,
            output_key=f"out/{job_id}.{fmt.extension}",
            output_format=fmt.format,
            output_subtype=fmt.subtype,
            effects=effects,
            impulses={i: impulses[i].storage_key for i in wanted},
            timeout_s=settings.job_timeout_s,
        )
        async with runtime.db.transaction() as session:
            job = await repo.create_job(
                session,
                job_id=job_id,
                input_file_id=source.id,
                effects=effects,
                output_format=fmt.format,
                output_subtype=fmt.subtype,
                message=message.encode(),
            )
        runtime.notify_outbox()
        return Job.of(job)

    @strawberry.mutation(
        description="Cancel a job: a QUEUED one at once, a RUNNING one by asking its worker "
        "(it then ends CANCELLED). Codes: NOT_FOUND, CONFLICT (already finished)."
    )
    async def cancel_job(self, info: Info[Context, None], id: strawberry.ID) -> Job:
        runtime = info.context.runtime
        async with runtime.db.transaction() as session:
            job = await repo.get_job(session, id, for_update=True)
            if job.status.terminal:
                raise InvalidTransition(f"job {id} already {job.status.value}")
            if job.status is _JobStatus.QUEUED:
                job = await repo.set_status(
                    session, id, _JobStatus.CANCELLED, message="cancelled before it started"
                )
        if job.status is _JobStatus.CANCELLED:
            await runtime.announce(
                JobEvent(
                    job_id=job.id, status=job.status, progress=job.progress, message=job.message
                )
            )
        else:
            await runtime.send_control(ControlMessage(kind="cancel", job_id=job.id))
        return Job.of(job)
