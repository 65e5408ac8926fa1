"""Live job updates.

The subscription registers with the event relay before it reads the job, so no event can
fall between the stored state it sends first and the relayed events that follow. The API key
comes in the `connection_init` payload (see `graph_api.auth`); another owner's job is
NOT_FOUND, and `myJobUpdates` gets the events of the caller's jobs from the relay, which
sorts them by the owner each event carries.

Events carry their job's `version` (one more per change): a subscription keeps the newest it
has seen and drops anything older, a late copy from a second relay, say, while a re-queued
job's QUEUED (a newer version) still goes through.

Over graphql-transport-ws, a `myJobUpdates` that selects only plain fields sends each event
as one rendering shared by every subscriber with the same document and variables
(`graph_api.fanout`): hundreds of subscribers cost hundreds of sends, not hundreds of
executions. Each still checks its own key before each event.
"""

# Strawberry types its decorators-with-arguments as returning Any.
# mypy: disable-error-code="untyped-decorator"

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import TypeVar

import strawberry
from strawberry.types import Info

from graph_api.context import Context
from graph_api.fanout import DirectQueue, FrameStream
from graph_api.permissions import AUTHENTICATED
from graph_api.types import BatchEvent, JobEvent
from jobs import contract
from jobs.db import repository as repo
from jobs.errors import without_paths
from jobs.models import Job as JobRecord
from jobs.models import batch_progress
from jobs.states import JobStatus as _JobStatus

_RANK = {_JobStatus.QUEUED: 0, _JobStatus.RUNNING: 1}


def _order(version: int, status: _JobStatus, progress: float) -> tuple[int, int, float]:
    """Events only move forward: by version, then QUEUED < RUNNING (by progress) < a
    terminal status."""
    return version, _RANK.get(status, 2), progress


E = TypeVar("E", contract.JobEvent, contract.BatchEvent)


async def _next(context: Context, queue: asyncio.Queue[E]) -> E:
    """The next event for a subscription whose key is still live: a revoked key ends it
    with `UNAUTHENTICATED` within `Settings.key_recheck_s`, even while no event comes. An
    event already waiting is taken without a timer (a burst reaches every subscriber)."""
    while True:
        try:
            event: E | None = queue.get_nowait()
        except asyncio.QueueEmpty:
            # `timeout`, not `wait_for`: no task per wait (a burst wakes every subscriber
            # for every event).
            try:
                async with asyncio.timeout(context.runtime.settings.key_recheck_s):
                    event = await queue.get()
            except TimeoutError:
                event = None
        await context.still_authenticated()
        if event is not None:
            return event


def _from_job(job: JobRecord) -> JobEvent:
    at = job.finished_at or job.started_at or job.created_at
    return JobEvent(
        job_id=strawberry.ID(job.id),
        status=job.status,
        progress=job.progress,
        message=without_paths(job.message),
        at=at,
    )


def _from_event(event: contract.JobEvent) -> JobEvent:
    return JobEvent(
        job_id=strawberry.ID(event.job_id),
        status=event.status,
        progress=event.progress,
        message=without_paths(event.message),
        at=event.at,
    )


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="The job's current state, then each change, until it finishes. "
        "Code NOT_FOUND for an unknown id (or another owner's).",
        permission_classes=AUTHENTICATED,
    )
    async def job_updates(
        self, info: Info[Context, None], job_id: strawberry.ID
    ) -> AsyncGenerator[JobEvent, None]:
        context = info.context
        with context.runtime.events.subscribe(job_id) as queue:
            job = await context.job(job_id)
            yield _from_job(job)
            last = _order(job.version, job.status, job.progress)
            finished = job.status.terminal
            while not finished:
                event = await _next(context, queue)
                key = _order(event.version, event.status, event.progress)
                if key <= last:
                    continue
                last, finished = key, event.status.terminal
                yield _from_event(event)

    @strawberry.subscription(
        description="The batch's current state, then each change of it (every change of one "
        "of its jobs), until it ends. Code NOT_FOUND for an unknown id (or another owner's).",
        permission_classes=AUTHENTICATED,
    )
    async def batch_updates(
        self, info: Info[Context, None], batch_id: strawberry.ID
    ) -> AsyncGenerator[BatchEvent, None]:
        context = info.context
        with context.runtime.events.subscribe_batch(batch_id) as queue:
            batch = await context.batch(batch_id)
            async with context.runtime.db.transaction() as session:
                jobs = await repo.batch_jobs(session, batch.id)
            yield BatchEvent(
                batch_id=strawberry.ID(batch.id),
                status=batch.status,
                progress=batch_progress(jobs),
                done=sum(j.status.terminal for j in jobs),
                total=len(jobs),
                at=batch.finished_at or batch.created_at,
            )
            last, finished = batch.version, batch.status.terminal
            while not finished:
                event = await _next(context, queue)
                if event.version <= last:
                    continue
                last, finished = event.version, event.status.terminal
                yield BatchEvent(
                    batch_id=strawberry.ID(event.batch_id),
                    status=event.status,
                    progress=event.progress,
                    done=event.done,
                    total=event.total,
                    at=event.at,
                )

    @strawberry.subscription(
        description="Every event of every one of your jobs (admins: of all jobs), as it "
        "happens; never completes.",
        permission_classes=AUTHENTICATED,
    )
    async def my_job_updates(self, info: Info[Context, None]) -> AsyncGenerator[JobEvent, None]:
        context = info.context
        principal = await context.principal()
        events = context.runtime.events
        stream = FrameStream.of(info, JobEvent, _from_event)
        mine = None if stream is None else stream.queue(context.authenticated_recently)
        with (
            events.subscribe_all(mine)
            if principal.admin
            else events.subscribe_owner(principal.owner, mine) as queue
        ):
            while True:
                event = await _next(context, queue)
                if stream is None or not await stream.send(event):
                    yield _from_event(event)
                if isinstance(queue, DirectQueue):
                    queue.done()
