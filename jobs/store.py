"""Every change of a job, and the event that tells it, in one transaction.

One method per transition (submit, start, progress, succeed, fail, cancel, requeue,
dead_letter, recover). Each is a guarded UPDATE (`WHERE status IN (...)`, the states
`jobs.states` lets reach the target: no read, check, then write) that bumps the job's
`version` and returns its owner, and the `JobEvent` it makes is written to the outbox in the
same transaction; the relay (`jobs.outbox`) publishes it. Nothing else writes a job's status
or builds an event, so no caller can change a job and forget to tell its subscribers.

Progress is not a transition: its event skips the outbox (a lost tick is harmless) and the
row is written at most once per `PROGRESS_WRITE_S` per job, while events keep their pace.

The statements are Core, built once at import, and each transition is one call of
`Database.run` (one transaction, on SQLite one hop to the database's own thread), which also
stamps the outbox rows the relay published since the last one: no transaction of their own
while jobs move. The transition that ends a job deletes its stored job message.

>>> store = JobStore(db, relay)                                    # doctest: +SKIP
>>> await store.start(job_id, actor="dsp-0")                       # QUEUED -> RUNNING + event
>>> await store.succeed(job_id, output, ...)                       # RUNNING -> SUCCEEDED + event
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn, TypeVar, cast

from sqlalchemy import (
    JSON,
    Connection,
    DateTime,
    String,
    Table,
    Update,
    bindparam,
    case,
    delete,
    func,
    insert,
    select,
    update,
)

from jobs import tracing
from jobs.album import pooled_loudness
from jobs.contract import AudioAnalysis, BatchEvent, Compliance, JobEvent, JobMessage
from jobs.db import Database
from jobs.db.tables import (
    ANALYSIS_COLUMNS,
    AlbumMeasureRow,
    BatchRow,
    FileRow,
    JobRow,
    OutboxRow,
)
from jobs.deliveries import BATCH_COMPLETED, enqueue_export, enqueue_webhook
from jobs.errors import (
    EngineError,
    InvalidTransition,
    JobCancelled,
    JobNotFound,
    QuotaExceeded,
    WorkerLost,
)
from jobs.models import AudioFile, Batch, Job
from jobs.outbox import BATCH, EVENT, JOB, OutboxRelay, Pending, forget_job_messages, mark_sent
from jobs.states import TERMINAL, JobStatus, check_transition, sources

_T = TypeVar("_T")

PROGRESS_WRITE_S = 1.0
"""A job's progress is written to its row at most this often (its events go out faster)."""

_jobs = cast(Table, JobRow.__table__)
_files = cast(Table, FileRow.__table__)
_outbox = cast(Table, OutboxRow.__table__)
_batches = cast(Table, BatchRow.__table__)
_measures = cast(Table, AlbumMeasureRow.__table__)
_TS = DateTime(timezone=True)
_UNFINISHED = [JobStatus.QUEUED.value, JobStatus.RUNNING.value]


def _guarded(to: JobStatus, among: Collection[JobStatus] | None = None) -> Update:
    """UPDATE of one job to `to`, matching only if it is in a state `jobs.states` allows
    to reach `to` (narrowed to `among`); it bumps the version and returns what the event
    needs."""
    allowed = sources(to)
    if among is not None:
        assert set(among) <= allowed, f"{among} cannot all become {to}"
        allowed = frozenset(among)
    return (
        update(_jobs)
        .where(_jobs.c.id == bindparam("b_id"), _jobs.c.status.in_(sorted(allowed)))
        .values(status=to.value, version=_jobs.c.version + 1)
        .returning(
            _jobs.c.owner,
            _jobs.c.version,
            _jobs.c.progress,
            _jobs.c.message,
            _jobs.c.error_code,
            _jobs.c.error_message,
            _jobs.c.webhook_url,
            _jobs.c.export_url,
            _jobs.c.batch_id,
        )
    )


def _ended(to: JobStatus, among: Collection[JobStatus] | None = None) -> Update:
    return _guarded(to, among).values(finished_at=bindparam("b_at", type_=_TS))


_START = _guarded(JobStatus.RUNNING).values(
    progress=0.0,
    attempts=_jobs.c.attempts + 1,
    message=bindparam("b_message"),
    started_at=func.coalesce(_jobs.c.started_at, bindparam("b_at", type_=_TS)),
)
_SUCCEED = _ended(JobStatus.SUCCEEDED).values(
    progress=1.0,
    output_file_id=bindparam("b_output"),
    dsp_seconds=bindparam("b_dsp"),
    node_id=bindparam("b_node"),
    actor=bindparam("b_actor"),
    compliance=bindparam("b_compliance", type_=JSON),
    edits=bindparam("b_edits", type_=JSON),
    segments=bindparam("b_segments"),
    error_code=None,
    error_message=None,
)
_ERROR: dict[str, Any] = {"error_code": bindparam("b_code"), "error_message": bindparam("b_text")}
_FAIL = _ended(JobStatus.FAILED).values(**_ERROR)
_CANCEL_RUNNING = _ended(JobStatus.CANCELLED).values(**_ERROR)
_CANCEL_QUEUED = _ended(JobStatus.CANCELLED, {JobStatus.QUEUED}).values(
    message=bindparam("b_message")
)
_REQUEUE = _guarded(JobStatus.QUEUED).values(progress=0.0, message=bindparam("b_message"))
# A dead letter of a job that kept failing on infrastructure keeps its last note (`note`).
_DEAD_LETTER_WITH_LAST = _ended(JobStatus.FAILED).values(
    error_code=bindparam("b_code"),
    error_message=case(
        (
            _jobs.c.message != "",
            bindparam("b_text", type_=String).concat("; last: ").concat(_jobs.c.message),
        ),
        else_=bindparam("b_text", type_=String),
    ),
)
_SAME_ATTEMPT = _jobs.c.attempts == bindparam("b_attempts")
_RECOVER_QUEUED = _REQUEUE.where(_SAME_ATTEMPT)
_RECOVER_FAILED = _FAIL.where(_SAME_ATTEMPT)
_PROGRESS = (
    update(_jobs)
    .where(_jobs.c.id == bindparam("b_id"), _jobs.c.status == JobStatus.RUNNING.value)
    .values(progress=bindparam("b_progress"))
)
_PLANNED = (
    update(_jobs)
    .where(_jobs.c.id == bindparam("b_id"), _jobs.c.status == JobStatus.RUNNING.value)
    .values(segments=bindparam("b_segments"), message=bindparam("b_message"))
)
_NOTE = update(_jobs).where(_jobs.c.id == bindparam("b_id")).values(message=bindparam("b_message"))
_STATUS = select(_jobs.c.status).where(_jobs.c.id == bindparam("b_id"))
_LAST_JOB_MESSAGE = (
    select(_outbox.c.body, _outbox.c.trace)
    .where(_outbox.c.job_id == bindparam("b_id"), _outbox.c.kind == JOB)
    .order_by(_outbox.c.id.desc())
    .limit(1)
)
_INSERT_OUTBOX = insert(_outbox)
_INSERT_JOB = insert(_jobs)
_INSERT_FILE = insert(_files)
_INSERT_BATCH = insert(_batches)
_BATCH_COUNTS = (
    select(
        _jobs.c.status,
        func.count(),
        func.sum(case((_jobs.c.status.in_(_UNFINISHED), _jobs.c.progress), else_=1.0)),
    )
    .where(_jobs.c.batch_id == bindparam("b_batch"))
    .group_by(_jobs.c.status)
)
# PostgreSQL: the changes of one batch's jobs take turns on its row (an album is released
# once, by whichever change leaves every file measured or ended).
_BATCH_TURN = (
    select(_batches.c.album, _batches.c.album_lufs)
    .where(_batches.c.id == bindparam("b_batch"))
    .with_for_update()
)
_MEASURED = _guarded(JobStatus.QUEUED, {JobStatus.RUNNING}).values(
    progress=0.0, message=bindparam("b_message")
)
_FORGET_MEASURE = delete(_measures).where(_measures.c.job_id == bindparam("b_id"))
_INSERT_MEASURE = insert(_measures)
_ALBUM_MEASURES = select(_measures.c.job_id, _measures.c.block_powers).where(
    _measures.c.batch_id == bindparam("b_batch")
)
_ALBUM_WAITING = select(_jobs.c.id).where(
    _jobs.c.batch_id == bindparam("b_batch"), _jobs.c.status.in_(_UNFINISHED)
)
_SET_ALBUM = (
    update(_batches)
    .where(_batches.c.id == bindparam("b_batch"))
    .values(album_lufs=bindparam("b_lufs"))
)
_FOLLOW_BATCH = (
    update(_batches)
    .where(
        _batches.c.id == bindparam("b_batch"),
        _batches.c.status.not_in(sorted(s.value for s in TERMINAL)),
    )
    .values(
        status=bindparam("b_status"),
        version=_batches.c.version + 1,
        finished_at=bindparam("b_finished", type_=_TS),
    )
    .returning(_batches.c.owner, _batches.c.version, _batches.c.webhook_url)
)
_ANALYSE = update(_files).where(_files.c.id == bindparam("b_id"))
_JOB_COLUMNS = [c for c in Job.__slots__ if c in _jobs.c]
_BATCH_COLUMNS = [c for c in Batch.__slots__ if c in _batches.c]
_FILE_COLUMNS = [c for c in AudioFile.__slots__ if c in _files.c]
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
# PostgreSQL: one owner's submits take turns until commit, so two API replicas (or two pooled
# connections of one) cannot both count room for the last job of a quota. SQLite needs none:
# a process has one connection, and its writers queue on the file's lock.
_OWNER_TURN = select(func.pg_advisory_xact_lock(func.hashtext(bindparam("b_owner"))))


def now() -> datetime:
    return datetime.now(UTC)


def terminal_status(error: EngineError) -> JobStatus:
    """The state a job ends in when its run raised `error`."""
    return JobStatus.CANCELLED if isinstance(error, JobCancelled) else JobStatus.FAILED


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
    webhook_url: str | None = None
    export_url: str | None = None
    batch_id: str | None = None


@dataclass(frozen=True, slots=True)
class Changed:
    """A transition that happened: its event, the outbox rows it wrote, whether it stored a
    webhook or an export (`jobs.deliveries`), and the event of its batch (if it has one:
    every change of a batched job is one of its batch)."""

    event: JobEvent
    rows: tuple[Pending, ...]
    deliveries: bool = False
    batch: BatchEvent | None = None


# --- one transaction each (run through `Database.run`) ----------------------------------


def _outbox_row(
    conn: Connection,
    job_id: str,
    kind: str,
    body: bytes,
    at: datetime,
    trace: str | None = None,
) -> Pending:
    """Store a row to publish in `trace` (a `traceparent`), or else in the current span's
    trace (`Database.run` carries the caller's context into its thread), if any."""
    trace = trace or tracing.traceparent()
    result = conn.execute(
        _INSERT_OUTBOX,
        {
            "job_id": job_id,
            "kind": kind,
            "body": body,
            "created_at": at,
            "sent_at": None,
            "trace": trace,
        },
    )
    key = result.inserted_primary_key
    assert key is not None
    return Pending(int(key[0]), kind, body, trace)


def _apply(
    conn: Connection, stmt: Update, job_id: str, to: JobStatus, at: datetime, **params: Any
) -> Changed | None:
    """Run a guarded UPDATE; when it matched, write its event to the outbox."""
    row = conn.execute(stmt, {"b_id": job_id, "b_at": at, **params}).one_or_none()
    if row is None:
        return None
    values: tuple[Any, ...] = tuple(row)
    owner, version, progress, message, code, text, webhook_url, export_url, batch_id = values
    if to.terminal:
        forget_job_messages(conn, job_id)
    event = JobEvent(
        job_id=job_id,
        status=to,
        progress=float(progress),
        message=f"{code}: {text}" if code and to.terminal else str(message or ""),
        owner=owner,
        version=int(version),
        at=at,
    )
    rows = (_outbox_row(conn, job_id, EVENT, event.encode(), at),)
    delivered = False
    if to.terminal and export_url and to is JobStatus.SUCCEEDED:
        enqueue_export(conn, owner=owner, url=export_url, job_id=job_id, at=at)
        delivered = True
    if to.terminal and webhook_url:
        event_type = f"job.{to.value.lower()}"
        enqueue_webhook(
            conn,
            owner=owner,
            url=webhook_url,
            event_type=event_type,
            data=None,
            subject_id=job_id,
            at=at,
        )
        delivered = True
    if batch_id is None:
        return Changed(event, rows, delivered)
    batch, more, hooked = _follow_batch(conn, batch_id, at)
    return Changed(event, (*rows, *more), delivered or hooked, batch)


def batch_state(counts: dict[JobStatus, int]) -> JobStatus:
    """A batch's status from how many of its jobs are in each state: QUEUED while none
    started, RUNNING until all ended, then SUCCEEDED if all did, FAILED if any did, else
    CANCELLED."""
    if counts.get(JobStatus.QUEUED, 0) + counts.get(JobStatus.RUNNING, 0):
        started = sum(n for status, n in counts.items() if status is not JobStatus.QUEUED)
        return JobStatus.RUNNING if started else JobStatus.QUEUED
    if counts.get(JobStatus.FAILED, 0):
        return JobStatus.FAILED
    if counts.get(JobStatus.CANCELLED, 0):
        return JobStatus.CANCELLED
    return JobStatus.SUCCEEDED


def _follow_batch(
    conn: Connection, batch_id: str, at: datetime
) -> tuple[BatchEvent | None, tuple[Pending, ...], bool]:
    """A job of `batch_id` changed: bring the batch's status along (in the job's own
    transaction) and write its event; release an album whose files are all measured; once
    it ended, its `batch.completed` webhook too (True then). Nothing once the batch ended."""
    album, album_lufs = conn.execute(_BATCH_TURN, {"b_batch": batch_id}).one()
    released = _release_album(conn, batch_id, at) if album and album_lufs is None else ()
    counts: dict[JobStatus, int] = {}
    progress = 0.0
    for status, count, summed in conn.execute(_BATCH_COUNTS, {"b_batch": batch_id}):
        counts[JobStatus(status)] = int(count)
        progress += float(summed or 0.0)
    total = sum(counts.values())
    status = batch_state(counts)
    row = conn.execute(
        _FOLLOW_BATCH,
        {
            "b_batch": batch_id,
            "b_status": status.value,
            "b_finished": at if status.terminal else None,
        },
    ).one_or_none()
    if row is None:
        return None, (), False
    owner, version, webhook_url = row
    event = BatchEvent(
        batch_id=batch_id,
        status=status,
        progress=progress / total if total else 1.0,
        done=sum(counts.get(s, 0) for s in TERMINAL),
        total=total,
        owner=owner,
        version=int(version),
        at=at,
    )
    hooked = status.terminal and webhook_url is not None
    if hooked:
        # Its data (the batch as GraphQL shows it) is rendered when first sent.
        enqueue_webhook(
            conn,
            owner=owner,
            url=webhook_url,
            event_type=BATCH_COMPLETED,
            data=None,
            subject_id=batch_id,
            at=at,
        )
    return event, (*released, _outbox_row(conn, batch_id, BATCH, event.encode(), at)), hooked


def _release_album(conn: Connection, batch_id: str, at: datetime) -> tuple[Pending, ...]:
    """Once every unfinished job of an album batch was measured: store the files' pooled
    loudness and queue each measured job's render with it. Nothing before."""
    measured = {
        str(job_id): list(powers)
        for job_id, powers in conn.execute(_ALBUM_MEASURES, {"b_batch": batch_id})
    }
    waiting = [str(job_id) for (job_id,) in conn.execute(_ALBUM_WAITING, {"b_batch": batch_id})]
    if not waiting or any(job_id not in measured for job_id in waiting):
        return ()
    # The files of jobs that ended meanwhile (cancelled, failed) are not in the album.
    lufs = pooled_loudness(measured[job_id] for job_id in waiting)
    # -inf (nothing passed the gates) marks a silent album released too.
    conn.execute(_SET_ALBUM, {"b_batch": batch_id, "b_lufs": lufs})
    rows = []
    for job_id in waiting:
        last = conn.execute(_LAST_JOB_MESSAGE, {"b_id": job_id}).one_or_none()
        assert last is not None, "a measured job was queued with its message"
        render = JobMessage.decode(bytes(last.body)).model_copy(
            update={"phase": "render", "album_lufs": lufs if math.isfinite(lufs) else None}
        )
        # The render goes on in the trace the job was submitted in.
        rows.append(_outbox_row(conn, job_id, JOB, render.encode(), at, last.trace))
    return tuple(rows)


def _refuse(conn: Connection, job_id: str, to: JobStatus) -> NoReturn:
    """Raise why `job_id` could not become `to` (its guarded UPDATE did not match)."""
    current = conn.scalar(_STATUS, {"b_id": job_id})
    if current is None:
        raise JobNotFound(job_id)
    check_transition(JobStatus(current), to)
    raise InvalidTransition(f"job {job_id} is {current}; it could not become {to.value}")


def _current(conn: Connection, job_id: str) -> JobStatus:
    current = conn.scalar(_STATUS, {"b_id": job_id})
    if current is None:
        raise JobNotFound(job_id)
    return JobStatus(current)


def count_unfinished(conn: Connection, owner: str | None) -> int:
    """QUEUED or RUNNING jobs of `owner` (None: the jobs nobody owns)."""
    if owner is None:
        return int(conn.scalar(_COUNT_UNFINISHED_UNOWNED) or 0)
    return int(conn.scalar(_COUNT_UNFINISHED, {"b_owner": owner}) or 0)


def _check_quota(conn: Connection, owner: str | None, adding: int, most: int) -> None:
    """`QuotaExceeded` unless `owner` may have `adding` more unfinished jobs; on PostgreSQL
    the owner's submits take turns from here until commit."""
    if conn.dialect.name == "postgresql":
        conn.execute(_OWNER_TURN, {"b_owner": owner or ""})
    unfinished = count_unfinished(conn, owner)
    if unfinished + adding > most:
        more = f" and {adding} more asked for" if adding > 1 else ""
        raise QuotaExceeded(
            f"{unfinished} of your jobs are QUEUED or RUNNING{more}, the most allowed is "
            f"{most}: wait for some to finish or cancel them"
        )


def _submit(
    conn: Connection, new: NewJob, most_unfinished: int, at: datetime
) -> tuple[Job, Pending]:
    _check_quota(conn, new.owner, 1, most_unfinished)
    return _insert_job(conn, new, at)


def _submit_batch(
    conn: Connection, batch: Batch, jobs: Sequence[NewJob], most_unfinished: int
) -> tuple[list[Job], list[Pending]]:
    _check_quota(conn, batch.owner, len(jobs), most_unfinished)
    conn.execute(
        _INSERT_BATCH,
        {c: getattr(batch, c) for c in _BATCH_COLUMNS} | {"status": batch.status.value},
    )
    # A microsecond apart, so listings keep the order of the batch's files.
    made = [
        _insert_job(conn, new, batch.created_at + timedelta(microseconds=i))
        for i, new in enumerate(jobs)
    ]
    return [job for job, _ in made], [row for _, row in made]


def _insert_job(conn: Connection, new: NewJob, at: datetime) -> tuple[Job, Pending]:
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
        webhook_url=new.webhook_url,
        export_url=new.export_url,
        batch_id=new.batch_id,
    )
    values = {f: getattr(job, f) for f in _JOB_COLUMNS}
    values["status"] = "QUEUED"
    conn.execute(_INSERT_JOB, values)
    return job, _outbox_row(conn, new.job_id, JOB, new.message, at)


def _start(conn: Connection, job_id: str, message: str, at: datetime) -> Changed:
    changed = _apply(conn, _START, job_id, JobStatus.RUNNING, at, b_message=message)
    if changed is None:
        _refuse(conn, job_id, JobStatus.RUNNING)
    return changed


def _succeed(
    conn: Connection,
    job_id: str,
    output: AudioFile,
    output_analysis: AudioAnalysis | None,
    input_file_id: str,
    input_analysis: AudioAnalysis | None,
    dsp_seconds: float,
    node_id: str | None,
    actor: str | None,
    compliance: Compliance | None,
    edits: Sequence[tuple[float, float]],
    segments: int,
    at: datetime,
) -> Changed:
    if input_analysis is not None:
        conn.execute(_ANALYSE, {"b_id": input_file_id, **_levels(input_analysis)})
    conn.execute(_INSERT_FILE, file_values(output, output_analysis))
    changed = _apply(
        conn,
        _SUCCEED,
        job_id,
        JobStatus.SUCCEEDED,
        at,
        b_output=output.id,
        b_dsp=dsp_seconds,
        b_node=node_id,
        b_actor=actor,
        b_compliance=compliance.model_dump(mode="json") if compliance else None,
        b_edits=[[start, end] for start, end in edits],
        b_segments=segments,
    )
    if changed is None:
        _refuse(conn, job_id, JobStatus.SUCCEEDED)  # rolls back the output row too
    return changed


def _fail(
    conn: Connection, job_id: str, to: JobStatus, code: str, text: str, at: datetime
) -> tuple[Changed | None, JobStatus]:
    stmt = _CANCEL_RUNNING if to is JobStatus.CANCELLED else _FAIL
    changed = _apply(conn, stmt, job_id, to, at, b_code=code, b_text=text)
    return changed, to if changed else _current(conn, job_id)


def _measured(
    conn: Connection, job_id: str, batch_id: str, powers: Sequence[float], at: datetime
) -> Changed:
    conn.execute(_FORGET_MEASURE, {"b_id": job_id})  # a redelivered measure measures again
    conn.execute(
        _INSERT_MEASURE, {"job_id": job_id, "batch_id": batch_id, "block_powers": list(powers)}
    )
    changed = _apply(
        conn,
        _MEASURED,
        job_id,
        JobStatus.QUEUED,
        at,
        b_message="measured: waiting for the album's other files",
    )
    if changed is None:
        _refuse(conn, job_id, JobStatus.QUEUED)  # rolls the measure back too
    return changed


def _cancel(conn: Connection, job_id: str, message: str, at: datetime) -> Changed | None:
    return _apply(conn, _CANCEL_QUEUED, job_id, JobStatus.CANCELLED, at, b_message=message)


def _requeue(conn: Connection, job_id: str, message: str, at: datetime) -> Changed | None:
    return _apply(conn, _REQUEUE, job_id, JobStatus.QUEUED, at, b_message=message)


def _dead_letter(
    conn: Connection, job_id: str, code: str, text: str, with_last: bool, at: datetime
) -> Changed | None:
    stmt = _DEAD_LETTER_WITH_LAST if with_last else _FAIL
    changed = _apply(conn, stmt, job_id, JobStatus.FAILED, at, b_code=code, b_text=text)
    if changed is None:
        _current(conn, job_id)  # JobNotFound when there is no such job
    return changed


def _recover(
    conn: Connection, job_id: str, attempts: int, max_attempts: int, at: datetime
) -> Changed | None:
    last = conn.execute(_LAST_JOB_MESSAGE, {"b_id": job_id}).one_or_none()
    if last is not None and attempts < max_attempts:
        changed = _apply(
            conn,
            _RECOVER_QUEUED,
            job_id,
            JobStatus.QUEUED,
            at,
            b_attempts=attempts,
            b_message="re-queued: its message was lost with its bridge",
        )
        if changed is None:
            return None
        again = _outbox_row(conn, job_id, JOB, bytes(last.body), at, last.trace)
        return Changed(changed.event, (again, *changed.rows), changed.deliveries, changed.batch)
    why = "its message is gone" if last is None else f"after {attempts} tries"
    return _apply(
        conn,
        _RECOVER_FAILED,
        job_id,
        JobStatus.FAILED,
        at,
        b_attempts=attempts,
        b_code=WorkerLost.code,
        b_text=f"the bridge running the job stopped ({why})",
    )


def file_values(file: AudioFile, analysis: AudioAnalysis | None = None) -> dict[str, Any]:
    """A file row's columns; `analysis`: the levels measured while a job wrote it."""
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


def _insert_file(conn: Connection, file: AudioFile) -> None:
    conn.execute(_INSERT_FILE, file_values(file))


def _stamping(conn: Connection, sent: list[int], fn: Callable[..., _T], *args: Any) -> _T:
    mark_sent(conn, sent, now())
    return fn(conn, *args)


# --- the store --------------------------------------------------------------------------


class JobStore:
    """The job life cycle of one process. Committed outbox rows go to `relay` at once; while
    there is none (the API before the broker answers), events go to `local` too, so this
    process's subscribers still hear its changes, and the rows wait for a relay's poll."""

    def __init__(
        self,
        db: Database,
        relay: OutboxRelay | None = None,
        local: Callable[[JobEvent | BatchEvent], None] | None = None,
        deliveries: Callable[[], None] | None = None,
    ) -> None:
        self.db = db
        self.relay = relay
        self.local = local
        self.deliveries = deliveries
        # job id -> (owner, version, monotonic time its row's progress was last written)
        self._running: dict[str, tuple[str | None, int, float]] = {}

    async def _run(self, fn: Callable[..., _T], *args: Any) -> _T:
        """`fn(conn, *args)` in one transaction that also stamps the rows the relay sent
        since the last one (no transaction of their own while jobs move)."""
        sent = self.relay.take_sent() if self.relay is not None else []
        try:
            return await self.db.run(_stamping, sent, fn, *args)
        except BaseException:
            if sent and self.relay is not None:
                self.relay.sent_again(sent)
            raise

    def _committed(self, changed: Changed | None, *rows: Pending) -> None:
        pending = [*rows, *(changed.rows if changed else ())]
        if self.relay is not None:
            self.relay.notify(pending)
        elif changed is not None and self.local is not None:
            self.local(changed.event)
            if changed.batch is not None:
                self.local(changed.batch)
        if changed is not None:
            if changed.deliveries and self.deliveries is not None:
                self.deliveries()
            if changed.event.status is JobStatus.RUNNING:
                event = changed.event
                self._running[event.job_id] = (event.owner, event.version, float("-inf"))
            else:
                self._running.pop(changed.event.job_id, None)

    async def add_file(self, file: AudioFile) -> AudioFile:
        """Store an uploaded file's row."""
        await self._run(_insert_file, file)
        return file

    async def submit(self, new: NewJob, *, most_unfinished: int) -> Job:
        """Store a QUEUED job and its message (published by the relay), unless its owner has
        `most_unfinished` jobs QUEUED or RUNNING already (`QuotaExceeded`)."""
        job, row = await self._run(_submit, new, most_unfinished, now())
        self._committed(None, row)
        return job

    async def submit_batch(
        self, batch: Batch, jobs: Sequence[NewJob], *, most_unfinished: int
    ) -> list[Job]:
        """Store a QUEUED batch and its QUEUED jobs with their messages, all or nothing
        (`QuotaExceeded` when the owner would pass `most_unfinished` unfinished jobs)."""
        made, rows = await self.db.run(_submit_batch, batch, jobs, most_unfinished)
        self._committed(None, *rows)
        return made

    async def start(self, job_id: str, actor: str) -> JobEvent:
        """RUNNING on `actor`, one more attempt, progress 0. `InvalidTransition` if it may
        not start (it ended), `JobNotFound` if there is no such job."""
        changed = await self._run(_start, job_id, f"running on {actor}", now())
        self._committed(changed)
        return changed.event

    async def progress(self, job_id: str, progress: float) -> None:
        """Publish a RUNNING job's progress (not stored in the outbox); its row gets it at
        most once per `PROGRESS_WRITE_S`. Only a job this store started reports progress."""
        known = self._running.get(job_id)
        if known is None:
            return
        owner, version, written = known
        event = JobEvent(
            job_id=job_id,
            status=JobStatus.RUNNING,
            progress=progress,
            owner=owner,
            version=version,
        )
        if self.relay is not None:
            await self.relay.publish_event(event)
        elif self.local is not None:
            self.local(event)
        clock = time.monotonic()
        if clock - written >= PROGRESS_WRITE_S:
            self._running[job_id] = (owner, version, clock)
            await self._run(_write_progress, job_id, progress)

    async def succeed(
        self,
        job_id: str,
        output: AudioFile,
        output_analysis: AudioAnalysis | None,
        *,
        input_file_id: str,
        input_analysis: AudioAnalysis | None,
        dsp_seconds: float,
        node_id: str | None,
        actor: str | None,
        compliance: Compliance | None = None,
        edits: Sequence[tuple[float, float]] = (),
        segments: int = 1,
    ) -> JobEvent:
        """Store the output file, the levels measured and the cuts made (`edits`, seconds of
        the input), and end the job SUCCEEDED with it (and its loudness compliance, if it had
        a `loudness` step). `InvalidTransition` if it may not succeed (cancelled meanwhile):
        nothing is kept."""
        changed = await self._run(
            _succeed,
            job_id,
            output,
            output_analysis,
            input_file_id,
            input_analysis,
            dsp_seconds,
            node_id,
            actor,
            compliance,
            edits,
            segments,
            output.created_at,
        )
        self._committed(changed)
        return changed.event

    async def measured(self, job_id: str, batch_id: str, block_powers: Sequence[float]) -> None:
        """RUNNING -> QUEUED after the measure phase of a job of album batch `batch_id`: keep
        its gating-block powers; the change that leaves every file of the album measured
        queues every render (`jobs.album`). `InvalidTransition` if it was not RUNNING."""
        changed = await self.db.run(_measured, job_id, batch_id, block_powers, now())
        self._committed(changed)

    async def fail(self, job_id: str, error: EngineError) -> JobStatus:
        """End a job with its own error: CANCELLED for `JobCancelled`, else FAILED, with the
        error's code. Returns the job's state after: the new one, or the final state it had
        reached already (then nothing changes)."""
        to = terminal_status(error)
        changed, status = await self._run(_fail, job_id, to, error.code, error.message, now())
        self._committed(changed)
        return status

    async def cancel(self, job_id: str) -> bool:
        """QUEUED -> CANCELLED (the API; a RUNNING job is cancelled by its bridge, which
        then calls `fail`). False when it was no longer QUEUED."""
        changed = await self._run(_cancel, job_id, "cancelled before it started", now())
        self._committed(changed)
        return changed is not None

    async def requeue(self, job_id: str, why: str = "handed back to the queue") -> bool:
        """RUNNING -> QUEUED (a bridge gives its message back on shutdown). False when it
        was not RUNNING."""
        changed = await self._run(_requeue, job_id, why, now())
        self._committed(changed)
        return changed is not None

    async def dead_letter(self, job_id: str, error: EngineError, *, with_last: bool) -> bool:
        """QUEUED or RUNNING -> FAILED with `error` (its message died in the dead-letter
        queue); `with_last` appends the job's last note. False when it had ended,
        `JobNotFound` when there is no such job."""
        changed = await self._run(_dead_letter, job_id, error.code, error.message, with_last, now())
        self._committed(changed)
        return changed is not None

    async def recover(self, job_id: str, attempts: int, max_attempts: int) -> JobStatus | None:
        """A job left RUNNING by a dead bridge, still at attempt `attempts`: QUEUED again
        from its stored message while it has tries left, else FAILED `WORKER_LOST`. None
        when it moved meanwhile (someone runs it)."""
        changed = await self._run(_recover, job_id, attempts, max_attempts, now())
        self._committed(changed)
        return None if changed is None else changed.event.status

    async def planned(self, job_id: str, segments: int, message: str) -> None:
        """Record how many segments a RUNNING job is rendered in, and why not more (no state
        change, no event: the job's query shows it)."""
        await self.db.run(_planned, job_id, segments, message)

    async def note(self, job_id: str, message: str) -> None:
        """Set a job's human-readable message without changing its state (the last error of
        a delivery that goes back to the queue)."""
        await self._run(_note, job_id, message)


def _write_progress(conn: Connection, job_id: str, progress: float) -> None:
    conn.execute(_PROGRESS, {"b_id": job_id, "b_progress": progress})


def _note(conn: Connection, job_id: str, message: str) -> None:
    conn.execute(_NOTE, {"b_id": job_id, "b_message": message})


def _planned(conn: Connection, job_id: str, segments: int, message: str) -> None:
    conn.execute(_PLANNED, {"b_id": job_id, "b_segments": segments, "b_message": message})
