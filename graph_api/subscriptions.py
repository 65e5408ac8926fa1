"""Live job updates.

The subscription registers with the event relay before it reads the job, so no event can
fall between the stored state it sends first and the relayed events that follow.
"""

# Strawberry types its decorators-with-arguments as returning Any.
# mypy: disable-error-code="untyped-decorator"

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry
from strawberry.types import Info

from graph_api.context import Context
from graph_api.types import JobEvent
from jobs import contract
from jobs.models import Job as JobRecord
from jobs.states import JobStatus as _JobStatus

_RANK = {_JobStatus.QUEUED: 0, _JobStatus.RUNNING: 1}


def _order(status: _JobStatus, progress: float) -> tuple[int, float]:
    """Events only move forward: QUEUED < RUNNING (by progress) < a terminal status."""
    return _RANK.get(status, 2), progress


def _from_job(job: JobRecord) -> JobEvent:
    at = job.finished_at or job.started_at or job.created_at
    return JobEvent(
        job_id=strawberry.ID(job.id),
        status=job.status,
        progress=job.progress,
        message=job.message,
        at=at,
    )


def _from_event(event: contract.JobEvent) -> JobEvent:
    return JobEvent(
        job_id=strawberry.ID(event.job_id),
        status=event.status,
        progress=event.progress,
        message=event.message,
        at=event.at,
    )


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="The job's current state, then each change, until it finishes. "
        "Code NOT_FOUND for an unknown id."
    )
    async def job_updates(
        self, info: Info[Context, None], job_id: strawberry.ID
    ) -> AsyncGenerator[JobEvent, None]:
        context = info.context
        with context.runtime.events.subscribe(job_id) as queue:
            job = await context.job(job_id)
            yield _from_job(job)
            last = _order(job.status, job.progress)
            finished = job.status.terminal
            while not finished:
                event = await queue.get()
                key = _order(event.status, event.progress)
                if key <= last:
                    continue
                last, finished = key, event.status.terminal
                yield _from_event(event)
