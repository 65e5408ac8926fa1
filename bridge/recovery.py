"""The start-up sweep: jobs left RUNNING by a bridge that died.

A message whose bridge died unacked goes back to the queue by itself (and counts towards the
delivery limit, which is how a job that keeps killing bridges ends DELIVERY_LIMIT), so the
sweep does not touch a job at once. It notes the RUNNING jobs nobody runs at start, waits a
grace period, and only a job still RUNNING, untouched (same attempt count) and not held here
has lost its message: it is re-queued from its stored message (RUNNING -> QUEUED) while it has
tries left, else failed with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping

from actors.pool import ActorPool
from jobs.broker import Broker
from jobs.db import Database
from jobs.db import repository as repo
from jobs.errors import WorkerLost
from jobs.outbox import OutboxRelay
from jobs.settings import Settings
from jobs.states import JobStatus

log = logging.getLogger(__name__)


async def orphaned_jobs(db: Database, pool: ActorPool) -> dict[str, int]:
    """RUNNING jobs no actor of the pool is running: {job id: attempts}."""
    live = set(pool.running_jobs())
    live |= {str(s["current_job"]) for s in await pool.stats() if s.get("current_job")}
    async with db.transaction() as session:
        running = await repo.stuck_jobs(session, JobStatus.RUNNING)
    return {job.id: job.attempts for job in running if job.id not in live}


async def recover_orphans(
    settings: Settings,
    db: Database,
    broker: Broker,
    orphans: Mapping[str, int],
    busy: Collection[str],
) -> tuple[list[str], list[str]]:
    """Re-queue or fail the orphans nobody picked up since; returns (re-queued, failed)."""
    requeued: list[str] = []
    failed: list[str] = []
    for job_id, attempts in orphans.items():
        if job_id in busy:
            continue
        async with db.transaction() as session:
            job = await repo.get_job(session, job_id)
            if job.status is not JobStatus.RUNNING or job.attempts != attempts:
                continue  # its message came back and someone ran it
            body = await repo.last_message(session, job.id)
            if body is not None and job.attempts < settings.max_attempts:
                await repo.set_status(
                    session,
                    job.id,
                    JobStatus.QUEUED,
                    progress=0.0,
                    message="re-queued: its message was lost with its bridge",
                )
                await repo.enqueue_again(session, job.id, body)
                requeued.append(job.id)
            else:
                why = "its message is gone" if body is None else f"after {job.attempts} tries"
                await repo.set_status(
                    session,
                    job.id,
                    JobStatus.FAILED,
                    error_code=WorkerLost.code,
                    error_message=f"the bridge running the job stopped ({why})",
                )
                failed.append(job.id)
    if requeued:
        await OutboxRelay(db, broker).publish_pending()
    if requeued or failed:
        log.warning("recovery: re-queued %s, failed %s", requeued, failed)
    return requeued, failed
