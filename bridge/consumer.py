"""Handling of one job message, from delivery to ack.

Order matters for at-least-once delivery: the outcome and its event are committed to the
database together (`jobs.store`), then the message is acked. A crash in between redelivers
the message, and a redelivered message of a finished job is acked without running again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import PurePath

from aio_pika.abc import AbstractIncomingMessage
from opentelemetry.trace import SpanKind

from actors.pool import ActorPool
from bridge.outcomes import Disposition, disposition
from bridge.progress import ProgressThrottle
from jobs import tracing
from jobs.contract import JobMessage, JobResult
from jobs.db import Database
from jobs.db import repository as repo
from jobs.errors import ContractError, EngineError, JobNotFound
from jobs.formats import output_format
from jobs.logs import job_context
from jobs.models import AudioFile
from jobs.settings import Settings
from jobs.states import JobStatus
from jobs.storage import Storage
from jobs.store import JobStore

log = logging.getLogger(__name__)

REQUEUE_BACKOFF_S = 0.5
REQUEUE_WAIT_LIMIT_S = 120.0


class JobConsumer:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        store: JobStore,
        pool: ActorPool,
        storage: Storage,
    ) -> None:
        self.settings = settings
        self.db = db
        self.store = store
        self.pool = pool
        self.storage = storage
        self.running: set[str] = set()

    async def handle(self, message: AbstractIncomingMessage) -> Disposition:
        """Run the job a message names and settle the message; returns what was done."""
        try:
            job = JobMessage.decode(message.body)
        except ContractError as exc:
            log.warning("dead-lettering an unreadable job message: %s", exc.message)
            await message.reject(requeue=False)
            return Disposition.REJECT
        attributes = {"job.id": job.job_id, "job.phase": job.phase}
        with (
            job_context(job.job_id),
            # The job's trace goes on from the message's `traceparent` (`jobs.tracing`).
            tracing.span(
                "bridge job", message.headers, kind=SpanKind.CONSUMER, attributes=attributes
            ),
        ):
            return await self._handle(job, message)

    async def _handle(self, job: JobMessage, message: AbstractIncomingMessage) -> Disposition:
        if job.job_id in self.running:
            # A second copy (recovery re-queued a job whose first delivery came back too).
            log.info("job %s is already running here; acking the duplicate", job.job_id)
            await message.ack()
            return Disposition.ACK
        self.running.add(job.job_id)
        try:
            outcome = await self._outcome(job)
        except asyncio.CancelledError:
            # Shutdown past its grace period: hand the job back to the queue.
            await asyncio.shield(self._give_back(job, message))
            raise
        finally:
            self.running.discard(job.job_id)
        await _settle(message, outcome)
        return outcome

    async def _outcome(self, job: JobMessage) -> Disposition:
        try:
            await self._run(job)
            return Disposition.ACK
        except Exception as exc:
            outcome = disposition(exc)
            if outcome is Disposition.REQUEUE:
                log.warning("job %s: %r -> %s", job.job_id, exc, outcome)
                await self._before_requeue(job.job_id, exc)
                return outcome
            if not isinstance(exc, EngineError):
                log.warning("job %s: %s -> %s", job.job_id, exc, outcome)
                return outcome
            try:
                await self._record_failure(job, exc)
            except Exception as infra:
                log.warning("job %s: cannot record its failure: %s", job.job_id, infra)
                return disposition(infra) if not isinstance(infra, EngineError) else outcome
            return outcome

    async def _before_requeue(self, job_id: str, exc: BaseException) -> None:
        """Infrastructure failed (database, broker...): keep the message until the database
        answers again, so an outage does not burn the delivery limit in a few fast
        redeliveries, and leave the error on the job for the dead-letter record."""
        delay = REQUEUE_BACKOFF_S
        deadline = time.monotonic() + REQUEUE_WAIT_LIMIT_S
        while True:
            await asyncio.sleep(delay)
            try:
                await self.store.note(job_id, f"delivery failed, retrying: {exc!r}"[:1000])
                return
            except Exception as still_down:
                if time.monotonic() > deadline:
                    log.warning("job %s: database still down (%s); requeueing", job_id, still_down)
                    return
                delay = min(delay * 2, 5.0)

    async def _run(self, message: JobMessage) -> None:
        job_id = message.job_id
        job = await self.db.run(repo.job_to_run, job_id)
        if job is None:
            raise JobNotFound(job_id)
        if job.status.terminal:
            log.info("job %s is already %s; acking without running", job_id, job.status)
            return

        running: asyncio.Task[None] | None = None

        async def record_running(actor: str) -> None:
            # Raises why when the job may not start (cancelled while it waited, say).
            await self.store.start(job_id, actor)

        async def started(actor: str) -> None:
            # The job may have waited in the pool for an actor: it is RUNNING only now. That
            # is recorded while the actor already works (a short job is over in a few ms);
            # progress and the outcome wait for it, so events keep their order.
            nonlocal running
            throttle.mark()  # the first progress event comes an interval after this one
            running = asyncio.create_task(record_running(actor))

        async def report(progress: float) -> None:
            if running is not None:
                await running
            await self.store.progress(job_id, progress)

        async def planned(segments: int, reason: str) -> None:
            if running is not None:
                await running
            note = f"running in {segments} segments" if segments > 1 else "running unsplit"
            await self.store.planned(job_id, segments, f"{note}: {reason}" if reason else note)

        throttle = ProgressThrottle(self.settings.progress_interval_s, report)
        try:
            result = await self.pool.run(
                message,
                throttle.update,
                on_start=started,
                on_plan=planned,
                input_seconds=job.input_seconds,
            )
        finally:
            if running is not None:
                await running
        if message.phase == "measure":
            await self._record_measure(message, result)
            return
        await self._record_success(message, job, result)
        log.info("job %s succeeded on %s (%.3f s of DSP)", job_id, result.actor, result.dsp_seconds)

    async def _record_measure(self, message: JobMessage, result: JobResult) -> None:
        """The measure phase of a job of an album batch is over: back to QUEUED with its
        gating blocks; its render comes once every file of the album is measured."""
        batch_id = await self.db.run(repo.batch_of, message.job_id)
        if batch_id is None or result.album_blocks is None:
            raise ContractError("a measure message for a job outside an album batch")
        await self.store.measured(message.job_id, batch_id, result.album_blocks)
        log.info("job %s measured for its album on %s", message.job_id, result.actor)

    async def _record_success(
        self, message: JobMessage, job: repo.JobToRun, result: JobResult
    ) -> None:
        fmt = output_format(message.output_format, message.output_subtype)
        at = repo.now()
        output = AudioFile(
            id=repo.new_id(),
            filename=f"{PurePath(job.input_filename).stem}.processed.{fmt.extension}",
            format=result.format,
            subtype=result.subtype,
            sample_rate=result.sample_rate,
            channels=result.channels,
            frames=result.frames,
            size_bytes=result.size_bytes,
            storage_key=result.output_key,
            role="output",
            owner=job.owner,
            created_at=at,
        )
        # Cancelled (or otherwise ended) meanwhile: raises InvalidTransition, keeps nothing.
        await self.store.succeed(
            message.job_id,
            output,
            result.output_analysis,
            input_file_id=job.input_file_id,
            input_analysis=result.input_analysis,
            dsp_seconds=result.dsp_seconds,
            node_id=result.node_id or None,
            actor=result.actor or None,
            compliance=result.compliance,
            edits=[(edit.start_s, edit.end_s) for edit in result.edits],
            segments=result.segments,
        )

    async def _record_failure(self, message: JobMessage, exc: EngineError) -> None:
        """FAILED or CANCELLED with the error's code; a job that already ended (cancelled
        through the API while it ran) keeps its state, and any output it left is removed."""
        status = await self.store.fail(message.job_id, exc)
        if status is not JobStatus.SUCCEEDED:
            await asyncio.to_thread(self.storage.delete, message.output_key)
        log.info("job %s %s: %s %s", message.job_id, status, exc.code, exc.message)

    async def _give_back(self, message: JobMessage, delivery: AbstractIncomingMessage) -> None:
        try:
            await self.store.requeue(message.job_id)
        except Exception as exc:
            log.warning("job %s: cannot mark it queued again: %s", message.job_id, exc)
        await _settle(delivery, Disposition.REQUEUE)


async def _settle(message: AbstractIncomingMessage, outcome: Disposition) -> None:
    try:
        if outcome is Disposition.ACK:
            await message.ack()
        elif outcome is Disposition.REJECT:
            await message.reject(requeue=False)
        else:
            await message.nack(requeue=True)
    except Exception as exc:  # channel gone: the broker redelivers, which is safe
        log.warning("cannot %s message: %s", outcome, exc)
