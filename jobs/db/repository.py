"""Reads and writes of files, jobs and the outbox. Every job state change goes through
`set_status`, which checks the transition against `jobs.states`."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import String, and_, cast, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from jobs.contract import AudioAnalysis, Compliance
from jobs.db import lifecycle
from jobs.db.tables import ANALYSIS_COLUMNS, ApiKeyRow, FileRow, JobRow, OutboxRow, PresetRow
from jobs.errors import ApiKeyNotFound, BadInput, FileNotFound, JobNotFound, PresetNotFound
from jobs.models import AudioFile, Job
from jobs.states import JobStatus, check_transition


def new_id() -> str:
    return uuid.uuid4().hex


def now() -> datetime:
    return datetime.now(UTC)


def _aware(ts: datetime | None) -> datetime | None:
    return None if ts is None else lifecycle.aware(ts)


def _file(row: FileRow) -> AudioFile:
    return AudioFile(
        id=row.id,
        filename=row.filename,
        format=row.format,
        subtype=row.subtype,
        sample_rate=row.sample_rate,
        channels=row.channels,
        frames=row.frames,
        size_bytes=row.size_bytes,
        storage_key=row.storage_key,
        role=row.role,
        owner=row.owner,
        created_at=_aware(row.created_at) or row.created_at,
    )


def _job(row: JobRow) -> Job:
    return Job(
        id=row.id,
        status=JobStatus(row.status),
        progress=row.progress,
        input_file_id=row.input_file_id,
        output_file_id=row.output_file_id,
        effects=list(row.effects),
        output_format=row.output_format,
        output_subtype=row.output_subtype,
        error_code=row.error_code,
        error_message=row.error_message,
        message=row.message,
        attempts=row.attempts,
        owner=row.owner,
        created_at=_aware(row.created_at) or row.created_at,
        started_at=_aware(row.started_at),
        finished_at=_aware(row.finished_at),
        dsp_seconds=row.dsp_seconds,
        compliance=Compliance.model_validate(row.compliance) if row.compliance else None,
        edits=tuple((float(a), float(b)) for a, b in row.edits or ()),
    )


async def add_file(session: AsyncSession, file: AudioFile) -> AudioFile:
    await session.run_sync(lambda sync: lifecycle.insert_file(sync.connection(), file))
    return file


async def get_file(session: AsyncSession, file_id: str) -> AudioFile:
    row = await session.get(FileRow, file_id)
    if row is None:
        raise FileNotFound(file_id)
    return _file(row)


async def get_files(session: AsyncSession, ids: Sequence[str]) -> dict[str, AudioFile]:
    rows = (await session.scalars(select(FileRow).where(FileRow.id.in_(ids)))).all()
    return {r.id: _file(r) for r in rows}


async def create_job(session: AsyncSession, new: lifecycle.NewJob) -> Job:
    """Write the job row and its outgoing message in the caller's transaction, so a job is
    never stored without its message or published without its row."""
    job, _outbox_id = await session.run_sync(
        lambda sync: lifecycle.insert_job(sync.connection(), new, now())
    )
    return job


async def get_job(session: AsyncSession, job_id: str, *, for_update: bool = False) -> Job:
    stmt = select(JobRow).where(JobRow.id == job_id)
    if for_update:
        stmt = stmt.with_for_update()
    row = (await session.scalars(stmt)).one_or_none()
    if row is None:
        raise JobNotFound(job_id)
    return _job(row)


def encode_cursor(job: Job) -> str:
    return base64.urlsafe_b64encode(f"{job.created_at.isoformat()}|{job.id}".encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        stamp, job_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
        return datetime.fromisoformat(stamp), job_id
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInput(f"invalid cursor {cursor!r}") from exc


async def list_jobs(
    session: AsyncSession,
    *,
    first: int = 20,
    after: str | None = None,
    status: JobStatus | None = None,
    owner: str | None = None,
) -> tuple[list[Job], bool]:
    """Newest first; returns one page and whether more follow."""
    stmt = select(JobRow)
    if status is not None:
        stmt = stmt.where(JobRow.status == status.value)
    if owner is not None:
        stmt = stmt.where(JobRow.owner == owner)
    if after:
        at, job_id = _decode_cursor(after)
        at_db = at.replace(tzinfo=None) if _naive_db(session) else at
        stmt = stmt.where(
            or_(JobRow.created_at < at_db, and_(JobRow.created_at == at_db, JobRow.id < job_id))
        )
    stmt = stmt.order_by(JobRow.created_at.desc(), JobRow.id.desc()).limit(first + 1)
    rows = (await session.scalars(stmt)).all()
    return [_job(r) for r in rows[:first]], len(rows) > first


def _naive_db(session: AsyncSession) -> bool:
    return session.bind is not None and session.bind.dialect.name == "sqlite"


async def count_jobs(session: AsyncSession, status: JobStatus | None = None) -> int:
    stmt = select(func.count()).select_from(JobRow)
    if status is not None:
        stmt = stmt.where(JobRow.status == status.value)
    return int((await session.scalar(stmt)) or 0)


async def set_status(session: AsyncSession, job_id: str, status: JobStatus, **fields: Any) -> Job:
    """Move a job to `status` (checked by `jobs.states`), setting other columns too.

    Stamps `started_at` on RUNNING and `finished_at` on a terminal state.
    """
    job = await get_job(session, job_id, for_update=True)
    if job.status != status:
        check_transition(job.status, status)
    values: dict[str, Any] = {"status": status.value, **fields}
    if status is JobStatus.RUNNING and job.started_at is None:
        values["started_at"] = now()
    if status.terminal:
        values["finished_at"] = now()
    await session.execute(update(JobRow).where(JobRow.id == job_id).values(**values))
    return await get_job(session, job_id)


async def note(session: AsyncSession, job_id: str, message: str) -> None:
    """Set a job's human-readable message without changing its state (e.g. the last error
    of a delivery that goes back to the queue)."""
    await session.execute(update(JobRow).where(JobRow.id == job_id).values(message=message))


async def ping(session: AsyncSession) -> None:
    """Raise unless the database answers."""
    await session.execute(select(1))


async def stuck_jobs(session: AsyncSession, status: JobStatus) -> list[Job]:
    rows = (await session.scalars(select(JobRow).where(JobRow.status == status.value))).all()
    return [_job(r) for r in rows]


async def enqueue_again(session: AsyncSession, job_id: str, body: bytes) -> None:
    """Put a job's message back in the outbox (recovery of a job whose message was lost)."""
    session.add(OutboxRow(job_id=job_id, body=body, created_at=now(), sent_at=None))
    await session.flush()


async def last_message(session: AsyncSession, job_id: str) -> bytes | None:
    """The newest message stored for a job (to re-queue it after its delivery was lost)."""
    body = await session.scalar(
        select(OutboxRow.body)
        .where(OutboxRow.job_id == job_id)
        .order_by(OutboxRow.id.desc())
        .limit(1)
    )
    return None if body is None else bytes(body)


# --- ownership and deletion -------------------------------------------------------------
#
# A file belongs to its `owner`, and an output file also to the owner of the job whose
# `output_file_id` it is (a query-side rule, so ownership holds whoever wrote the row).
# Deleted files keep their row with `deleted_at` set; their blob is gone.


async def visible_file(session: AsyncSession, file_id: str, owner: str | None) -> AudioFile:
    """See `lifecycle.visible_file`."""
    return await session.run_sync(
        lambda sync: lifecycle.visible_file(sync.connection(), file_id, owner)
    )


async def deleted_file_ids(session: AsyncSession, ids: Sequence[str]) -> set[str]:
    rows = await session.scalars(
        select(FileRow.id).where(FileRow.id.in_(ids), FileRow.deleted_at.is_not(None))
    )
    return set(rows.all())


async def mark_file_deleted(session: AsyncSession, file_id: str) -> None:
    await session.execute(update(FileRow).where(FileRow.id == file_id).values(deleted_at=now()))


async def unfinished_jobs_using(session: AsyncSession, file_id: str) -> list[Job]:
    """QUEUED or RUNNING jobs reading `file_id` as their input or as an impulse response."""
    unfinished = JobRow.status.in_([JobStatus.QUEUED.value, JobStatus.RUNNING.value])
    stmt = select(JobRow).where(
        unfinished,
        or_(JobRow.input_file_id == file_id, cast(JobRow.effects, String).contains(file_id)),
    )
    jobs = [_job(r) for r in (await session.scalars(stmt)).all()]
    return [j for j in jobs if j.input_file_id == file_id or _uses_impulse(j.effects, file_id)]


def _uses_impulse(effects: list[dict[str, Any]], file_id: str) -> bool:
    return any(
        isinstance(step.get("reverb"), dict) and step["reverb"].get("impulse") == file_id
        for step in effects
    )


async def count_jobs_by_status(session: AsyncSession) -> dict[JobStatus, int]:
    rows = (
        await session.execute(select(JobRow.status, func.count()).group_by(JobRow.status))
    ).all()
    counts = dict.fromkeys(JobStatus, 0)
    for status, count in rows:
        counts[JobStatus(status)] = int(count)
    return counts


# --- API keys ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    name: str
    prefix: str
    owner: str
    admin: bool
    created_at: datetime
    revoked_at: datetime | None


def _key(row: ApiKeyRow) -> ApiKey:
    return ApiKey(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        owner=row.owner,
        admin=row.admin,
        created_at=_aware(row.created_at) or row.created_at,
        revoked_at=_aware(row.revoked_at),
    )


async def add_api_key(
    session: AsyncSession, *, name: str, key_hash: str, prefix: str, owner: str, admin: bool
) -> ApiKey:
    taken = await session.scalar(select(func.count()).where(ApiKeyRow.name == name))
    if taken:
        raise BadInput(f"an API key named {name!r} exists already")
    row = ApiKeyRow(
        id=new_id(),
        name=name,
        key_hash=key_hash,
        prefix=prefix,
        owner=owner,
        admin=admin,
        created_at=now(),
        revoked_at=None,
    )
    session.add(row)
    await session.flush()
    return _key(row)


async def api_key_by_hash(session: AsyncSession, key_hash: str) -> tuple[ApiKey, str] | None:
    """The live (unrevoked) key with this hash, and the stored hash to compare in constant
    time."""
    row = (
        await session.scalars(
            select(ApiKeyRow).where(ApiKeyRow.key_hash == key_hash, ApiKeyRow.revoked_at.is_(None))
        )
    ).one_or_none()
    return None if row is None else (_key(row), row.key_hash)


async def list_api_keys(session: AsyncSession) -> list[ApiKey]:
    rows = await session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.created_at))
    return [_key(r) for r in rows.all()]


async def count_api_keys(session: AsyncSession) -> int:
    """Every key ever made, revoked ones included."""
    return int((await session.scalar(select(func.count()).select_from(ApiKeyRow))) or 0)


async def revoke_api_key(session: AsyncSession, id_or_name: str) -> ApiKey:
    row = (
        await session.scalars(
            select(ApiKeyRow).where(or_(ApiKeyRow.id == id_or_name, ApiKeyRow.name == id_or_name))
        )
    ).one_or_none()
    if row is None:
        raise ApiKeyNotFound(id_or_name)
    if row.revoked_at is None:
        row.revoked_at = now()
        await session.flush()
    return _key(row)


# --- presets ----------------------------------------------------------------------------
#
# Presets are per owner; the owner column holds '' for presets saved without authentication.


@dataclass(frozen=True, slots=True)
class Preset:
    name: str
    effects: list[dict[str, Any]]
    owner: str | None
    created_at: datetime
    updated_at: datetime


def _preset(row: PresetRow) -> Preset:
    return Preset(
        name=row.name,
        effects=list(row.effects),
        owner=row.owner or None,
        created_at=_aware(row.created_at) or row.created_at,
        updated_at=_aware(row.updated_at) or row.updated_at,
    )


async def save_preset(
    session: AsyncSession, owner: str | None, name: str, effects: list[dict[str, Any]]
) -> Preset:
    """Create the preset, or replace the chain of the owner's preset of that name."""
    row = (
        await session.scalars(
            select(PresetRow).where(PresetRow.owner == (owner or ""), PresetRow.name == name)
        )
    ).one_or_none()
    at = now()
    if row is None:
        row = PresetRow(owner=owner or "", name=name, effects=effects, created_at=at, updated_at=at)
        session.add(row)
    else:
        row.effects = effects
        row.updated_at = at
    await session.flush()
    return _preset(row)


async def get_preset(session: AsyncSession, owner: str | None, name: str) -> Preset:
    row = (
        await session.scalars(
            select(PresetRow).where(PresetRow.owner == (owner or ""), PresetRow.name == name)
        )
    ).one_or_none()
    if row is None:
        raise PresetNotFound(name)
    return _preset(row)


async def list_presets(session: AsyncSession, owner: str | None) -> list[Preset]:
    rows = await session.scalars(
        select(PresetRow).where(PresetRow.owner == (owner or "")).order_by(PresetRow.name)
    )
    return [_preset(r) for r in rows.all()]


async def delete_preset(session: AsyncSession, owner: str | None, name: str) -> None:
    result = await session.execute(
        delete(PresetRow).where(PresetRow.owner == (owner or ""), PresetRow.name == name)
    )
    if not getattr(result, "rowcount", 0):
        raise PresetNotFound(name)


# --- engine measurements ----------------------------------------------------------------


async def file_analyses(session: AsyncSession, ids: Sequence[str]) -> dict[str, AudioAnalysis]:
    """The stored analyses of those of `ids` that have one (a job has read or written them)."""
    names = list(ANALYSIS_COLUMNS)
    columns = [getattr(FileRow, ANALYSIS_COLUMNS[name]) for name in names]
    rows = (
        await session.execute(
            select(FileRow.id, *columns).where(
                FileRow.id.in_(ids), FileRow.analysis_duration_s.is_not(None)
            )
        )
    ).all()
    return {
        str(r[0]): AudioAnalysis.model_validate(
            {
                **dict(zip(names, r[1:], strict=True)),
                "duration_seconds": float(r[1 + names.index("duration_seconds")] or 0.0),
                "clipping": bool(r[1 + names.index("clipping")]),
            }
        )
        for r in rows
    }


async def job_placements(session: AsyncSession, ids: Sequence[str]) -> dict[str, tuple[str, str]]:
    """{job id: (Ray node id, actor name)} of the jobs of `ids` that ran to completion."""
    rows = (
        await session.execute(
            select(JobRow.id, JobRow.node_id, JobRow.actor).where(
                JobRow.id.in_(ids), JobRow.node_id.is_not(None)
            )
        )
    ).all()
    return {str(r[0]): (str(r[1]), str(r[2] or "")) for r in rows}


@dataclass(frozen=True, slots=True)
class References:
    """What the sweep must keep: blobs of live files, and outputs jobs may still write."""

    keys: frozenset[str]
    file_ids: frozenset[str]
    unfinished_job_ids: frozenset[str]


async def references(session: AsyncSession) -> References:
    live = (
        await session.execute(
            select(FileRow.id, FileRow.storage_key).where(FileRow.deleted_at.is_(None))
        )
    ).all()
    unfinished = await session.scalars(
        select(JobRow.id).where(
            JobRow.status.in_([JobStatus.QUEUED.value, JobStatus.RUNNING.value])
        )
    )
    return References(
        keys=frozenset(row.storage_key for row in live),
        file_ids=frozenset(row.id for row in live),
        unfinished_job_ids=frozenset(unfinished.all()),
    )
