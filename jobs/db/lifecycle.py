"""The statements every job runs through: submit, outbox, start, progress, success.

They run once or twice per job in the API and the bridge, so they skip the ORM: Core
statements on the tables, built once at import (their cache keys are computed once too).
Each function is one transaction's work on a plain connection: call it through
`Database.run(fn, ...)`, which commits, or rolls back when it raises.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn, cast

from sqlalchemy import (
    JSON,
    Connection,
    DateTime,
    Table,
    bindparam,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)

from jobs.contract import AudioAnalysis, Compliance
from jobs.db.tables import ANALYSIS_COLUMNS, FileRow, JobRow, OutboxRow
from jobs.errors import FileNotFound, InvalidTransition, JobNotFound, QuotaExceeded
from jobs.models import AudioFile, Job
from jobs.states import JobStatus, can_transition, check_transition

_jobs = cast(Table, JobRow.__table__)
_files = cast(Table, FileRow.__table__)
_outbox = cast(Table, OutboxRow.__table__)
_TS = DateTime(timezone=True)


def _sources(status: JobStatus) -> list[str]:
    """The states a job may be in to move to `status` (per `jobs.states`)."""
    return [s.value for s in JobStatus if s is status or can_transition(s, status)]


_UNFINISHED = [JobStatus.QUEUED.value, JobStatus.RUNNING.value]

_COUNT_UNFINISHED = (
    select(func.count())
    .select_from(_jobs)
    .where(_jobs.c.owner == bindparam("b_owner"), _jobs.c.status.in_(_UNFINISHED))
)
_COUNT_UNFINISHED_UNOWNED = (
    select(func.count())
    .select_from(_jobs)
    .where(_jobs.c.owner.is_(None), _jobs.c.status.in_(_UNFINISHED))
)
_INSERT_JOB = insert(_jobs)
_JOB_COLUMNS = [c for c in Job.__slots__ if c in _jobs.c]
_INSERT_OUTBOX = insert(_outbox)
_INSERT_FILE = insert(_files)
_PENDING = (
    select(_outbox.c.id, _outbox.c.body)
    .where(_outbox.c.sent_at.is_(None))
    .order_by(_outbox.c.id)
    .limit(bindparam("b_limit"))
)
_MARK_SENT = (
    update(_outbox)
    .where(_outbox.c.id.in_(bindparam("b_ids", expanding=True)))
    .values(sent_at=bindparam("b_at", type_=_TS))
)
_LOAD = (
    select(_jobs.c.status, _jobs.c.owner, _jobs.c.input_file_id, _files.c.filename)
    .join(_files, _files.c.id == _jobs.c.input_file_id)
    .where(_jobs.c.id == bindparam("b_id"))
)
_START = (
    update(_jobs)
    .where(_jobs.c.id == bindparam("b_id"), _jobs.c.status.in_(_sources(JobStatus.RUNNING)))
    .values(
        status=JobStatus.RUNNING.value,
        progress=0.0,
        attempts=_jobs.c.attempts + 1,
        message=bindparam("b_message"),
        started_at=func.coalesce(_jobs.c.started_at, bindparam("b_at", type_=_TS)),
    )
)
_STATUS = select(_jobs.c.status).where(_jobs.c.id == bindparam("b_id"))
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
_PROGRESS = (
    update(_jobs)
    .where(_jobs.c.id == bindparam("b_id"), _jobs.c.status == JobStatus.RUNNING.value)
    .values(progress=bindparam("b_progress"))
)
_SUCCEED = (
    update(_jobs)
    .where(_jobs.c.id == bindparam("b_id"), _jobs.c.status.in_(_sources(JobStatus.SUCCEEDED)))
    .values(
        status=JobStatus.SUCCEEDED.value,
        progress=1.0,
        output_file_id=bindparam("b_output"),
        dsp_seconds=bindparam("b_dsp"),
        node_id=bindparam("b_node"),
        actor=bindparam("b_actor"),
        compliance=bindparam("b_compliance", type_=JSON),
        edits=bindparam("b_edits", type_=JSON),
        error_code=None,
        error_message=None,
        finished_at=bindparam("b_at", type_=_TS),
    )
)
# PostgreSQL: one owner's submits take turns until commit, so two API replicas (or two pooled
# connections of one) cannot both count room for the last job of a quota. SQLite needs none:
# a process has one connection, and its writers queue on the file's lock.
_OWNER_TURN = select(func.pg_advisory_xact_lock(func.hashtext(bindparam("b_owner"))))
# Sets the columns its parameters name (`_levels`).
_ANALYSE = update(_files).where(_files.c.id == bindparam("b_id"))


@dataclass(frozen=True, slots=True)
class NewJob:
    """A job as it is asked for, before it is stored; `message` is its encoded broker
    message, stored with it (the outbox)."""

    job_id: str
    input_file_id: str
    effects: list[dict[str, Any]]
    output_format: str
    output_subtype: str
    message: bytes
    owner: str | None = None


def submit(conn: Connection, new: NewJob, *, most_unfinished: int, at: datetime) -> tuple[Job, int]:
    """`insert_job` unless the owner has `most_unfinished` jobs QUEUED or RUNNING already
    (`QuotaExceeded`)."""
    if conn.dialect.name == "postgresql":
        conn.execute(_OWNER_TURN, {"b_owner": new.owner or ""})
    unfinished = count_unfinished(conn, new.owner)
    if unfinished >= most_unfinished:
        raise QuotaExceeded(
            f"{unfinished} of your jobs are QUEUED or RUNNING, the most allowed is "
            f"{most_unfinished}: wait for some to finish or cancel them"
        )
    return insert_job(conn, new, at)


def aware(ts: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts


def visible_file(conn: Connection, file_id: str, owner: str | None) -> AudioFile:
    """The live file `file_id` if `owner` may see it (`owner=None`: anyone's): its own, or
    the output of one of its jobs. Else `FileNotFound`, which never tells "not yours" from
    "not there"."""
    if owner is None:
        row = conn.execute(_LIVE_FILE, {"b_id": file_id}).one_or_none()
    else:
        row = conn.execute(_FILE_VISIBLE_TO, {"b_id": file_id, "b_owner": owner}).one_or_none()
    if row is None:
        raise FileNotFound(file_id)
    values = row._asdict()
    values["created_at"] = aware(values["created_at"])
    return AudioFile(**values)


def count_unfinished(conn: Connection, owner: str | None) -> int:
    """QUEUED or RUNNING jobs of `owner` (None: the jobs nobody owns)."""
    if owner is None:
        return int((conn.scalar(_COUNT_UNFINISHED_UNOWNED)) or 0)
    return int((conn.scalar(_COUNT_UNFINISHED, {"b_owner": owner})) or 0)


def insert_job(conn: Connection, new: NewJob, at: datetime) -> tuple[Job, int]:
    """The job row and its outgoing message, in the caller's transaction (the outbox);
    returns the job and the id of its outbox row."""
    job = Job(
        id=new.job_id,
        status=JobStatus.QUEUED,
        progress=0.0,
        input_file_id=new.input_file_id,
        output_file_id=None,
        effects=new.effects,
        output_format=new.output_format,
        output_subtype=new.output_subtype,
        error_code=None,
        error_message=None,
        message="",
        attempts=0,
        owner=new.owner,
        created_at=at,
        started_at=None,
        finished_at=None,
        dsp_seconds=None,
    )
    row = {f: getattr(job, f) for f in _JOB_COLUMNS}
    conn.execute(_INSERT_JOB, {**row, "status": job.status.value})
    result = conn.execute(
        _INSERT_OUTBOX,
        {"job_id": new.job_id, "body": new.message, "created_at": at, "sent_at": None},
    )
    key = result.inserted_primary_key
    assert key is not None
    return job, int(key[0])


def pending_outbox(conn: Connection, limit: int = 100) -> list[tuple[int, bytes]]:
    rows = (conn.execute(_PENDING, {"b_limit": limit})).all()
    return [(int(r[0]), bytes(r[1])) for r in rows]


def mark_sent(conn: Connection, ids: list[int], at: datetime) -> None:
    if ids:
        conn.execute(_MARK_SENT, {"b_ids": ids, "b_at": at})


@dataclass(frozen=True, slots=True)
class JobToRun:
    """What the bridge reads of a job before running it."""

    status: JobStatus
    owner: str | None
    input_file_id: str
    input_filename: str


def load(conn: Connection, job_id: str) -> JobToRun | None:
    row = (conn.execute(_LOAD, {"b_id": job_id})).one_or_none()
    if row is None:
        return None
    return JobToRun(JobStatus(row[0]), row[1], str(row[2]), str(row[3]))


def start(conn: Connection, job_id: str, message: str, at: datetime) -> None:
    """RUNNING, one more attempt, progress 0. Raises `InvalidTransition` if the job may not
    start (it ended), `JobNotFound` if there is no such job."""
    result = conn.execute(_START, {"b_id": job_id, "b_message": message, "b_at": at})
    if not result.rowcount:
        _refuse(conn, job_id, JobStatus.RUNNING)


def set_progress(conn: Connection, job_id: str, progress: float) -> None:
    conn.execute(_PROGRESS, {"b_id": job_id, "b_progress": progress})


def succeed(
    conn: Connection,
    job_id: str,
    output: AudioFile,
    output_analysis: AudioAnalysis | None,
    *,
    input_file_id: str,
    input_analysis: AudioAnalysis | None,
    dsp_seconds: float,
    node_id: str | None,
    actor: str | None,
    at: datetime,
    compliance: Compliance | None = None,
    edits: Sequence[tuple[float, float]] = (),
) -> None:
    """Store the output file, the levels measured and the cuts made (`edits`, seconds of the
    input), and end the job SUCCEEDED with it (and its loudness compliance, if it had a
    `loudness` step). Raises `InvalidTransition` if it may not succeed (cancelled meanwhile):
    nothing is kept."""
    if input_analysis is not None:
        set_analysis(conn, input_file_id, input_analysis)
    insert_file(conn, output, output_analysis)
    result = conn.execute(
        _SUCCEED,
        {
            "b_id": job_id,
            "b_output": output.id,
            "b_dsp": dsp_seconds,
            "b_node": node_id,
            "b_actor": actor,
            "b_compliance": compliance.model_dump(mode="json") if compliance else None,
            "b_edits": [[start, end] for start, end in edits],
            "b_at": at,
        },
    )
    if not result.rowcount:
        _refuse(conn, job_id, JobStatus.SUCCEEDED)


def _refuse(conn: Connection, job_id: str, status: JobStatus) -> NoReturn:
    """Raise why `job_id` cannot move to `status` (a statement guarded by its state did not
    match it)."""
    current = conn.scalar(_STATUS, {"b_id": job_id})
    if current is None:
        raise JobNotFound(job_id)
    check_transition(JobStatus(current), status)
    raise InvalidTransition(f"job {job_id} is {current}; it could not become {status.value}")


def set_analysis(conn: Connection, file_id: str, analysis: AudioAnalysis) -> None:
    """The levels an actor measured reading or writing `file_id` (the latest wins)."""
    conn.execute(_ANALYSE, {"b_id": file_id, **_levels(analysis)})


def insert_file(conn: Connection, file: AudioFile, analysis: AudioAnalysis | None = None) -> None:
    """A file row; `analysis`: the levels measured while a job wrote it."""
    conn.execute(_INSERT_FILE, _file_values(file, analysis))


def _file_values(file: AudioFile, analysis: AudioAnalysis | None) -> dict[str, Any]:
    return {
        **{c: getattr(file, c) for c in _FILE_COLUMNS},
        "deleted_at": None,
        **_levels(analysis),
    }


def _levels(analysis: AudioAnalysis | None) -> dict[str, Any]:
    """The file columns that hold `analysis` (all NULL without one)."""
    return {
        column: getattr(analysis, name) if analysis else None
        for name, column in ANALYSIS_COLUMNS.items()
    }
