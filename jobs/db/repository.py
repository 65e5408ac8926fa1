"""Reads of files, jobs, API keys and presets. A job changes only through `jobs.store`.

Most reads go through an async ORM session; the few the bridge and the API make once per
job are Core functions of a connection, run through `Database.run` like the store's writes.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import (
    Connection,
    String,
    Table,
    and_,
    bindparam,
    cast,
    exists,
    func,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Select

from jobs.contract import AudioAnalysis, Compliance
from jobs.db.tables import ANALYSIS_COLUMNS, ApiKeyRow, BatchRow, FileRow, JobRow, PresetRow
from jobs.errors import BadInput, BatchNotFound, FileNotFound, JobNotFound, PresetNotFound
from jobs.models import AudioFile, Batch, Job
from jobs.states import JobStatus

_jobs: Table = JobRow.__table__  # type: ignore[assignment]
_files: Table = FileRow.__table__  # type: ignore[assignment]
_LOAD = (
    select(
        _jobs.c.status,
        _jobs.c.owner,
        _jobs.c.input_file_id,
        _files.c.filename,
        _files.c.frames,
        _files.c.sample_rate,
    )
    .join(_files, _files.c.id == _jobs.c.input_file_id)
    .where(_jobs.c.id == bindparam("b_id"))
)
_FILE_COLUMNS = [c for c in AudioFile.__slots__ if c in _files.c]
_LIVE_FILE = select(*(_files.c[c] for c in _FILE_COLUMNS)).where(
    _files.c.id == bindparam("b_id"), _files.c.deleted_at.is_(None)
)
_FILE_VISIBLE_TO = _LIVE_FILE.where(
    or_(
        _files.c.owner == bindparam("b_owner"),
        exists().where(
            _jobs.c.output_file_id == _files.c.id, _jobs.c.owner == bindparam("b_owner")
        ),
    )
)


def new_id() -> str:
    return uuid.uuid4().hex


def now() -> datetime:
    return datetime.now(UTC)


def aware(ts: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts


def _aware(ts: datetime | None) -> datetime | None:
    return None if ts is None else aware(ts)


def _file(row: FileRow) -> AudioFile:
    values = {name: getattr(row, name) for name in _FILE_COLUMNS}
    values["created_at"] = aware(row.created_at)
    return AudioFile(**values)


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
        node_id=row.node_id,
        segments=row.segments,
        actor=row.actor,
        version=row.version,
        webhook_url=row.webhook_url,
        export_url=row.export_url,
        batch_id=row.batch_id,
    )


async def get_files(session: AsyncSession, ids: Sequence[str]) -> dict[str, AudioFile]:
    rows = (await session.scalars(select(FileRow).where(FileRow.id.in_(ids)))).all()
    return {r.id: _file(r) for r in rows}


async def get_job(session: AsyncSession, job_id: str) -> Job:
    stmt = select(JobRow).where(JobRow.id == job_id)
    row = (await session.scalars(stmt)).one_or_none()
    if row is None:
        raise JobNotFound(job_id)
    return _job(row)


def encode_cursor(record: Job | Batch) -> str:
    """The cursor after `record` in a newest-first listing of its kind."""
    return base64.urlsafe_b64encode(
        f"{record.created_at.isoformat()}|{record.id}".encode()
    ).decode()


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
    rows, more = await _newest_first(session, JobRow, stmt, first, after)
    return [_job(r) for r in rows], more


R = TypeVar("R", JobRow, BatchRow)


async def _newest_first(
    session: AsyncSession, table: type[R], stmt: Select[R], first: int, after: str | None
) -> tuple[Sequence[R], bool]:
    """One page of `stmt` over `table` (jobs or batches) newest first, after the cursor
    `after`, and whether more follow."""
    if after:
        at, after_id = _decode_cursor(after)
        at_db = at.replace(tzinfo=None) if _naive_db(session) else at
        stmt = stmt.where(
            or_(
                table.created_at < at_db,
                and_(table.created_at == at_db, table.id < after_id),
            )
        )
    stmt = stmt.order_by(table.created_at.desc(), table.id.desc()).limit(first + 1)
    rows = (await session.scalars(stmt)).all()
    return rows[:first], len(rows) > first


def _naive_db(session: AsyncSession) -> bool:
    return session.bind is not None and session.bind.dialect.name == "sqlite"


async def ping(session: AsyncSession) -> None:
    """Raise unless the database answers."""
    await session.execute(select(1))


async def stuck_jobs(session: AsyncSession, status: JobStatus) -> list[Job]:
    rows = (await session.scalars(select(JobRow).where(JobRow.status == status.value))).all()
    return [_job(r) for r in rows]


# --- ownership and deletion -------------------------------------------------------------
#
# A file belongs to its `owner`, and an output file also to the owner of the job whose
# `output_file_id` it is (a query-side rule, so ownership holds whoever wrote the row).
# Deleted files keep their row with `deleted_at` set; their blob is gone.


def visible_file(conn: Connection, file_id: str, owner: str | None) -> AudioFile:
    """The live file `file_id` if `owner` may see it (`owner=None`: anyone's): its own, or
    the output of one of its jobs. Else `FileNotFound`, which never tells "not yours" from
    "not there". Run it through `Database.run`."""
    if owner is None:
        row = conn.execute(_LIVE_FILE, {"b_id": file_id}).one_or_none()
    else:
        row = conn.execute(_FILE_VISIBLE_TO, {"b_id": file_id, "b_owner": owner}).one_or_none()
    if row is None:
        raise FileNotFound(file_id)
    values = row._asdict()
    values["created_at"] = aware(values["created_at"])
    return AudioFile(**values)


@dataclass(frozen=True, slots=True)
class JobToRun:
    """What the bridge reads of a job before running it."""

    status: JobStatus
    owner: str | None
    input_file_id: str
    input_filename: str
    input_seconds: float = 0.0


def batch_of(conn: Connection, job_id: str) -> str | None:
    """The batch `job_id` was submitted in, if any. Run it through `Database.run`."""
    found = conn.scalar(select(_jobs.c.batch_id).where(_jobs.c.id == job_id))
    return None if found is None else str(found)


def job_to_run(conn: Connection, job_id: str) -> JobToRun | None:
    """Run it through `Database.run`."""
    row = conn.execute(_LOAD, {"b_id": job_id}).one_or_none()
    if row is None:
        return None
    seconds = int(row[4]) / int(row[5]) if row[5] else 0.0
    return JobToRun(JobStatus(row[0]), row[1], str(row[2]), str(row[3]), seconds)


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
    webhook_url: str | None = None
    """The default webhook URL of the jobs submitted with this key (`setDefaultWebhookUrl`)."""


def key_record(row: ApiKeyRow) -> ApiKey:
    return ApiKey(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        owner=row.owner,
        admin=row.admin,
        created_at=_aware(row.created_at) or row.created_at,
        revoked_at=_aware(row.revoked_at),
        webhook_url=row.webhook_url,
    )


async def api_key_by_hash(session: AsyncSession, key_hash: str) -> tuple[ApiKey, str] | None:
    """The live (unrevoked) key with this hash, and the stored hash to compare in constant
    time."""
    row = (
        await session.scalars(
            select(ApiKeyRow).where(ApiKeyRow.key_hash == key_hash, ApiKeyRow.revoked_at.is_(None))
        )
    ).one_or_none()
    return None if row is None else (key_record(row), row.key_hash)


async def list_api_keys(session: AsyncSession) -> list[ApiKey]:
    rows = await session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.created_at))
    return [key_record(r) for r in rows.all()]


async def count_api_keys(session: AsyncSession) -> int:
    """Every key ever made, revoked ones included."""
    return int((await session.scalar(select(func.count()).select_from(ApiKeyRow))) or 0)


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


def preset_record(row: PresetRow) -> Preset:
    return Preset(
        name=row.name,
        effects=list(row.effects),
        owner=row.owner or None,
        created_at=_aware(row.created_at) or row.created_at,
        updated_at=_aware(row.updated_at) or row.updated_at,
    )


async def get_preset(session: AsyncSession, owner: str | None, name: str) -> Preset:
    row = (
        await session.scalars(
            select(PresetRow).where(PresetRow.owner == (owner or ""), PresetRow.name == name)
        )
    ).one_or_none()
    if row is None:
        raise PresetNotFound(name)
    return preset_record(row)


async def list_presets(session: AsyncSession, owner: str | None) -> list[Preset]:
    rows = await session.scalars(
        select(PresetRow).where(PresetRow.owner == (owner or "")).order_by(PresetRow.name)
    )
    return [preset_record(r) for r in rows.all()]


# --- engine measurements ----------------------------------------------------------------


async def file_analyses(session: AsyncSession, ids: Sequence[str]) -> dict[str, AudioAnalysis]:
    """The stored analyses of those of `ids` that have one (a job has read or written them)."""
    names = list(ANALYSIS_COLUMNS)
    columns = [_files.c[ANALYSIS_COLUMNS[name]] for name in names]
    measured = _files.c[ANALYSIS_COLUMNS["duration_seconds"]].is_not(None)
    rows = (
        await session.execute(select(_files.c.id, *columns).where(_files.c.id.in_(ids), measured))
    ).all()
    return {str(r[0]): AudioAnalysis(**dict(zip(names, r[1:], strict=True))) for r in rows}


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


# --- batches ----------------------------------------------------------------------------


def _batch(row: BatchRow) -> Batch:
    return Batch(
        id=row.id,
        status=JobStatus(row.status),
        owner=row.owner,
        album=row.album,
        webhook_url=row.webhook_url,
        created_at=aware(row.created_at),
        finished_at=_aware(row.finished_at),
        version=row.version,
        album_lufs=row.album_lufs,
    )


async def get_batch(session: AsyncSession, batch_id: str) -> Batch:
    row = (await session.scalars(select(BatchRow).where(BatchRow.id == batch_id))).one_or_none()
    if row is None:
        raise BatchNotFound(batch_id)
    return _batch(row)


async def batch_jobs(session: AsyncSession, batch_id: str) -> list[Job]:
    """The jobs of a batch, in the order of its `fileIds`."""
    stmt = select(JobRow).where(JobRow.batch_id == batch_id).order_by(JobRow.created_at, JobRow.id)
    return [_job(r) for r in (await session.scalars(stmt)).all()]


async def list_batches(
    session: AsyncSession, *, first: int = 20, after: str | None = None, owner: str | None = None
) -> tuple[list[Batch], bool]:
    """Newest first; returns one page and whether more follow (like `list_jobs`)."""
    stmt = select(BatchRow)
    if owner is not None:
        stmt = stmt.where(BatchRow.owner == owner)
    rows, more = await _newest_first(session, BatchRow, stmt, first, after)
    return [_batch(r) for r in rows], more
