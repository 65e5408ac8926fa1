"""Root mutations: upload, import, submit, cancel, retry, delete, presets, webhooks.

`submitJob` validates everything before writing anything, then writes the job row and its
broker message in one transaction (the outbox) and only nudges the relay: it succeeds while
RabbitMQ is down, and the message goes out once the broker is back. Every mutation needs an
API key (unless authentication is off) and acts only on the caller's things (admins: all);
another owner's id is reported as NOT_FOUND, exactly like an unknown one.
"""

# Strawberry types its decorators-with-arguments as returning Any.
# mypy: disable-error-code="untyped-decorator"

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Sequence
from typing import Any

import strawberry
from opentelemetry.trace import SpanKind
from strawberry.file_uploads import Upload
from strawberry.types import Info

from graph_api.auth import Principal
from graph_api.context import Context
from graph_api.idempotency import idempotent
from graph_api.imports import import_audio
from graph_api.inputs import BatchInput, EffectInput, JobInput, OutputInput, chain_of
from graph_api.permissions import AUTHENTICATED
from graph_api.types import AudioFile, Batch, Job, Preset, Viewer, file_of
from graph_api.uploads import store_upload
from jobs import tracing
from jobs.contract import ControlMessage, JobMessage
from jobs.db import repository as repo
from jobs.db import writes
from jobs.effects import (
    IR_PRESETS,
    EffectCall,
    album_step,
    chain_json,
    parse_chain,
    referenced_files,
)
from jobs.errors import BadInput, FileInUse, InvalidTransition, NotFound
from jobs.formats import OutputFormat, output_format
from jobs.idempotency import fingerprint
from jobs.keyring import require_secret, rotate_secret
from jobs.logs import job_context
from jobs.models import AudioFile as AudioFileRecord
from jobs.models import Batch as BatchRecord
from jobs.models import Job as JobRecord
from jobs.states import JobStatus
from jobs.store import NewJob
from jobs.urls import guard_of, resolve

MAX_PRESET_NAME = 100


def _preset_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_PRESET_NAME or not name.isprintable():
        raise BadInput(f"a preset name is 1 to {MAX_PRESET_NAME} printable characters")
    return name


async def _impulses(
    context: Context, calls: Sequence[EffectCall], scope: str | None
) -> dict[str, AudioFileRecord]:
    """The uploaded impulse responses `calls` use; `BAD_INPUT` for an impulse that is neither
    a preset nor a file `scope` may read (the words never tell "not yours" from "not there"),
    or one over `Settings.max_ir_seconds`. Checked before anything is queued."""
    settings = context.runtime.settings
    impulses: dict[str, AudioFileRecord] = {}
    wanted = referenced_files(calls)
    for file_id in wanted:
        try:
            impulses[file_id] = await context.runtime.db.run(repo.visible_file, file_id, scope)
        except NotFound:
            raise BadInput(
                f"reverb.impulse {file_id!r} is neither a preset "
                f"({', '.join(IR_PRESETS)}) nor an audio file of yours"
            ) from None
    for file_id, ir in impulses.items():
        if ir.duration_seconds > settings.max_ir_seconds:
            raise BadInput(
                f"reverb.impulse: file {file_id} lasts {ir.duration_seconds:.1f} s; an impulse "
                f"response may last at most {settings.max_ir_seconds:g} s"
            )
    return impulses


async def webhook_url_of(context: Context, principal: Principal, given: str | None) -> str | None:
    """Where a new job's (or batch's) webhook goes: `given`, else the caller's key's default;
    "" is none. A given URL passes the SSRF guard (the default did when it was set), and
    either needs the owner's signing secret."""
    if given == "":
        return None
    url = principal.webhook_url if given is None else given
    if url is None:
        return None
    if given is not None:
        await resolve(given, guard_of(context.runtime.settings))
    await context.runtime.db.run(require_secret, principal.owner)
    return url


async def _enqueue(
    context: Context,
    *,
    owner: str | None,
    scope: str | None,
    source: AudioFileRecord,
    calls: Sequence[EffectCall],
    fmt: OutputFormat,
    webhook_url: str | None = None,
    export_url: str | None = None,
) -> JobRecord:
    """Check the impulses `calls` use (see `_impulses`) and the owner's quota, then write the
    job and its message together."""
    runtime = context.runtime
    new = await _new_job(
        context,
        owner=owner,
        scope=scope,
        source=source,
        calls=calls,
        fmt=fmt,
        webhook_url=webhook_url,
        export_url=export_url,
    )
    return await runtime.store.submit(
        new, most_unfinished=runtime.settings.max_queued_jobs_per_owner
    )


async def _new_job(
    context: Context,
    *,
    owner: str | None,
    scope: str | None,
    source: AudioFileRecord,
    calls: Sequence[EffectCall],
    fmt: OutputFormat,
    webhook_url: str | None = None,
    export_url: str | None = None,
    batch_id: str | None = None,
    album: bool = False,
) -> NewJob:
    """A job and its message, its impulses checked (see `_impulses`); a job of an `album`
    batch starts with its measure phase (`jobs.album`)."""
    settings = context.runtime.settings
    impulses = await _impulses(context, calls, scope)
    job_id = repo.new_id()
    effects: list[dict[str, Any]] = chain_json(calls)
    message = JobMessage(
        job_id=job_id,
        input_key=source.storage_key,
        output_key=f"out/{job_id}.{fmt.extension}",
        output_format=fmt.format,
        output_subtype=fmt.subtype,
        effects=effects,
        impulses={i: ir.storage_key for i, ir in impulses.items()},
        timeout_s=settings.job_timeout_s,
        phase="measure" if album else "render",
    )
    return NewJob(
        job_id,
        source.id,
        effects,
        fmt.format,
        fmt.subtype,
        message.encode(),
        owner,
        webhook_url=webhook_url,
        export_url=export_url,
        batch_id=batch_id,
    )


async def _chain(context: Context, owner: str | None, effects: Any, preset: str | None) -> Any:
    """The plain chain of a `JobInput` or `BatchInput`: its effects or its preset's."""
    if (effects is None) == (preset is None):
        raise BadInput("give exactly one of effects and preset")
    if preset is not None:
        async with context.runtime.db.transaction() as session:
            return (await repo.get_preset(session, owner, preset)).effects
    return chain_of(effects or [])


async def _cancel(context: Context, job: JobRecord) -> None:
    """Cancel an unfinished job: a QUEUED one at once, a RUNNING one through its bridge."""
    runtime = context.runtime
    if not await runtime.store.cancel(job.id):
        # It started meanwhile (or ended: then say so).
        job = await context.job(job.id)
        if job.status.terminal:
            raise InvalidTransition(f"job {job.id} already {job.status.value}")
        await runtime.send_control(ControlMessage(kind="cancel", job_id=job.id))


async def _submit_batch(context: Context, principal: Principal, input: BatchInput) -> BatchRecord:
    """Check every file and the chain against each, then store the batch and its jobs."""
    runtime = context.runtime
    most = runtime.settings.max_batch_files
    if not 1 <= len(input.file_ids) <= most:
        raise BadInput(f"fileIds: give 1 to {most} files, got {len(input.file_ids)}")
    if len(set(input.file_ids)) != len(input.file_ids):
        twice = next(f for f in input.file_ids if input.file_ids.count(f) > 1)
        raise BadInput(f"fileIds: file {twice} is named twice")
    chain = await _chain(context, principal.owner, input.effects, input.preset)
    if input.album and album_step(parse_chain(chain, None)) is None:
        raise BadInput(
            "album: the chain has no loudness or normalize LOUDNESS step to apply "
            "one gain to every file"
        )
    out = input.output or OutputInput()
    fmt = output_format(out.format, out.subtype)
    if out.url is not None:
        raise BadInput("output.url: a batch's outputs cannot all be PUT to one URL")
    webhook_url = await webhook_url_of(context, principal, input.webhook_url)
    batch = BatchRecord(
        id=repo.new_id(),
        status=JobStatus.QUEUED,
        owner=principal.owner,
        album=input.album,
        webhook_url=webhook_url,
        created_at=repo.now(),
    )
    jobs: list[NewJob] = []
    for file_id in input.file_ids:
        source = await context.file(file_id)
        calls = parse_chain(chain, source.sample_rate, source.duration_seconds)
        jobs.append(
            await _new_job(
                context,
                owner=principal.owner,
                scope=principal.scope,
                source=source,
                calls=calls,
                fmt=fmt,
                batch_id=batch.id,
                album=batch.album,
            )
        )
    await runtime.store.submit_batch(
        batch, jobs, most_unfinished=runtime.settings.max_queued_jobs_per_owner
    )
    return batch


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="Store an audio file (GraphQL multipart request). Codes: "
        "PAYLOAD_TOO_LARGE, UNSUPPORTED_AUDIO (undecodable, truncated, a NaN, infinite or "
        "absurdly large sample, or beyond the duration, channel or sample-rate limits).",
        permission_classes=AUTHENTICATED,
    )
    async def upload_audio(self, info: Info[Context, None], file: Upload) -> AudioFile:
        runtime = info.context.runtime
        principal = await info.context.principal()
        stored = await store_upload(runtime, file, principal.owner)  # type: ignore[arg-type]
        return file_of(stored, runtime.settings.public_url)

    @strawberry.mutation(
        description="Fetch an audio file from an http(s):// URL (or s3:// with object "
        "storage) and store it like an upload: the same size and decoding checks, and the "
        "SSRF guard. Codes: BAD_INPUT (a refused URL or address), URL_UNREACHABLE, "
        "URL_TIMEOUT, REDIRECT_LOOP, PAYLOAD_TOO_LARGE, UNSUPPORTED_AUDIO.",
        permission_classes=AUTHENTICATED,
    )
    async def import_audio(self, info: Info[Context, None], url: str) -> AudioFile:
        context = info.context
        runtime = context.runtime
        principal = await context.principal()
        stored = await idempotent(
            runtime,
            principal.owner,
            context.idempotency_key,
            "importAudio",
            fingerprint("importAudio", url),
            lambda: import_audio(runtime, url, principal.owner),
            context.file,
        )
        return file_of(stored, runtime.settings.public_url)

    @strawberry.mutation(
        description="Queue an effect chain (or a saved preset) over an uploaded file. Codes: "
        "NOT_FOUND (the input file), BAD_INPUT (parameters, an unknown reverb impulse, a step "
        "that would leave nothing), UNSUPPORTED_FORMAT, QUOTA_EXCEEDED.",
        permission_classes=AUTHENTICATED,
    )
    async def submit_job(self, info: Info[Context, None], input: JobInput) -> Job:
        context = info.context
        principal = await context.principal()

        async def make() -> JobRecord:
            chain = await _chain(context, principal.owner, input.effects, input.preset)
            out = input.output or OutputInput()
            source = await context.file(input.file_id)
            calls = parse_chain(chain, source.sample_rate, source.duration_seconds)
            fmt = output_format(out.format, out.subtype)
            webhook_url = await webhook_url_of(context, principal, input.webhook_url)
            if out.url is not None:
                await resolve(out.url, guard_of(context.runtime.settings))
            return await _enqueue(
                context,
                owner=principal.owner,
                scope=principal.scope,
                source=source,
                calls=calls,
                fmt=fmt,
                webhook_url=webhook_url,
                export_url=out.url,
            )

        # The job's trace starts here; its outbox row keeps it (`jobs.tracing`).
        with tracing.span("submitJob", kind=SpanKind.SERVER) as span:
            job = await idempotent(
                context.runtime,
                principal.owner,
                context.idempotency_key,
                "submitJob",
                fingerprint("submitJob", strawberry.asdict(input)),
                make,
                context.job,
            )
            span.set_attribute("job.id", job.id)
        return Job.of(job)

    @strawberry.mutation(
        description="Cancel a job: a QUEUED one at once, a RUNNING one by asking its worker "
        "(it then ends CANCELLED). Codes: NOT_FOUND, CONFLICT (already finished).",
        permission_classes=AUTHENTICATED,
    )
    async def cancel_job(self, info: Info[Context, None], id: strawberry.ID) -> Job:
        job = await info.context.job(id)  # NOT_FOUND unless the caller may see it
        with job_context(id):
            if job.status.terminal:
                raise InvalidTransition(f"job {id} already {job.status.value}")
            await _cancel(info.context, job)
        return Job.of(await info.context.job(id))

    @strawberry.mutation(
        description="Run one effect chain (or a saved preset) over several uploaded files: one "
        "job each, all queued together or none. With `album`, the chain's last `loudness` or "
        "`normalize LOUDNESS` step applies one gain to every file. Codes: NOT_FOUND (an input "
        "file), BAD_INPUT (no files, too many, a repeat, parameters, album without a loudness "
        "step), UNSUPPORTED_FORMAT, QUOTA_EXCEEDED.",
        permission_classes=AUTHENTICATED,
    )
    async def submit_batch(self, info: Info[Context, None], input: BatchInput) -> Batch:
        context = info.context
        principal = await context.principal()
        with tracing.span("submitBatch", kind=SpanKind.SERVER) as span:
            batch = await idempotent(
                context.runtime,
                principal.owner,
                context.idempotency_key,
                "submitBatch",
                fingerprint("submitBatch", strawberry.asdict(input)),
                lambda: _submit_batch(context, principal, input),
                context.batch,
            )
            span.set_attribute("batch.id", batch.id)
        return Batch.of(batch)

    @strawberry.mutation(
        description="Cancel every job of a batch that has not ended (see `cancelJob`); the "
        "batch then ends CANCELLED, or FAILED if one of its jobs had failed. Codes: "
        "NOT_FOUND, CONFLICT (the batch already ended).",
        permission_classes=AUTHENTICATED,
    )
    async def cancel_batch(self, info: Info[Context, None], id: strawberry.ID) -> Batch:
        context = info.context
        batch = await context.batch(id)
        if batch.status.terminal:
            raise InvalidTransition(f"batch {id} already {batch.status.value}")
        async with context.runtime.db.transaction() as session:
            jobs = await repo.batch_jobs(session, batch.id)
        for job in jobs:
            if not job.status.terminal:
                with job_context(job.id), contextlib.suppress(InvalidTransition):
                    await _cancel(context, job)
        return Batch.of(await context.batch(id))

    @strawberry.mutation(
        description="Run a finished (SUCCEEDED, FAILED or CANCELLED) job again as a new job "
        "with the same input, chain and output settings; it belongs to the original job's "
        "owner. Codes: NOT_FOUND (job, or its input deleted), BAD_INPUT (its impulse "
        "deleted), CONFLICT (not finished), QUOTA_EXCEEDED.",
        permission_classes=AUTHENTICATED,
    )
    async def retry_job(self, info: Info[Context, None], id: strawberry.ID) -> Job:
        context = info.context
        principal = await context.principal()
        old = await context.job(id)
        if not old.status.terminal:
            raise InvalidTransition(f"job {id} is {old.status.value}: only finished jobs retry")
        scope = principal.scope if principal.scope is not None else old.owner
        source = await context.runtime.db.run(repo.visible_file, old.input_file_id, scope)
        calls = parse_chain(old.effects, source.sample_rate, source.duration_seconds)
        fmt = output_format(old.output_format, old.output_subtype)
        job = await _enqueue(
            context,
            owner=old.owner,
            scope=scope,
            source=source,
            calls=calls,
            fmt=fmt,
            webhook_url=old.webhook_url,
            export_url=old.export_url,
        )
        return Job.of(job)

    @strawberry.mutation(
        description="Delete a stored file (its audio goes; jobs that used it keep their "
        "history). Codes: NOT_FOUND, CONFLICT (a QUEUED or RUNNING job reads it as input or "
        "impulse response).",
        permission_classes=AUTHENTICATED,
    )
    async def delete_file(self, info: Info[Context, None], id: strawberry.ID) -> bool:
        context = info.context
        file = await context.file(id)
        async with context.runtime.db.transaction() as session:
            users = await repo.unfinished_jobs_using(session, file.id)
            if users:
                job = users[0]
                raise FileInUse(
                    f"file {id} is used by {job.status.value} job {job.id}: cancel it or wait "
                    "until it finishes"
                )
            await writes.mark_file_deleted(session, file.id)
        await asyncio.to_thread(context.runtime.storage.delete, file.storage_key)
        return True

    @strawberry.mutation(
        description="Save (or replace) a named, non-empty effect chain of yours. It is "
        "validated like a chain (impulse responses included), except against the Nyquist "
        "rate, which is checked when it is used. Code: BAD_INPUT (also for an impulse that is "
        "neither a preset nor a file you can read).",
        permission_classes=AUTHENTICATED,
    )
    async def save_preset(
        self, info: Info[Context, None], name: str, effects: list[EffectInput]
    ) -> Preset:
        principal = await info.context.principal()
        name = _preset_name(name)
        if not effects:
            raise BadInput("effects: a preset needs at least one effect")
        calls = parse_chain(chain_of(effects), None)
        await _impulses(info.context, calls, principal.scope)
        chain = chain_json(calls)
        async with info.context.runtime.db.transaction() as session:
            preset = await writes.save_preset(session, principal.owner, name, chain)
        return Preset.of(preset)

    @strawberry.mutation(
        description="Make a new webhook signing secret (whsec_...) for your webhooks, "
        "replacing the old one at once. It is shown only now: store it where your receiver "
        "verifies signatures (Standard Webhooks).",
        permission_classes=AUTHENTICATED,
    )
    async def rotate_webhook_secret(self, info: Info[Context, None]) -> str:
        runtime = info.context.runtime
        principal = await info.context.principal()
        return await rotate_secret(runtime.db, runtime.fernet, principal.owner)

    @strawberry.mutation(
        description="Set (null: clear) the default webhook URL of the API key you call with: "
        "the jobs and batches you submit with it and no `webhookUrl` are announced there. "
        "Checked like "
        "`webhookUrl` now (the SSRF guard, and a secret from rotateWebhookSecret). Code: "
        "BAD_INPUT (a refused URL, no secret, or authentication off: no key to hold it).",
        permission_classes=AUTHENTICATED,
    )
    async def set_default_webhook_url(self, info: Info[Context, None], url: str | None) -> Viewer:
        runtime = info.context.runtime
        principal = await info.context.principal()
        if principal.key_name is None:
            raise BadInput("authentication is off, so there is no API key to hold a default")
        if url is not None:
            await resolve(url, guard_of(runtime.settings))
            await runtime.db.run(require_secret, principal.owner)
        async with runtime.db.transaction() as session:
            await writes.set_key_webhook_url(session, principal.key_name, url)
        return Viewer.of(dataclasses.replace(principal, webhook_url=url))

    @strawberry.mutation(
        description="Delete one of your presets. Code: NOT_FOUND.",
        permission_classes=AUTHENTICATED,
    )
    async def delete_preset(self, info: Info[Context, None], name: str) -> bool:
        principal = await info.context.principal()
        async with info.context.runtime.db.transaction() as session:
            await writes.delete_preset(session, principal.owner, name.strip())
        return True
