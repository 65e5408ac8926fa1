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
from jobs.db import Database
from jobs.db import repository as repo
from jobs.settings import Settings
from jobs.states import JobStatus
from jobs.store import JobStore

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
    store: JobStore,
    orphans: Mapping[str, int],
    busy: Collection[str],
) -> tuple[list[str], list[str]]:
    """Re-queue or fail the orphans nobody picked up since; returns (re-queued, failed).
    Each change is published like any other (`jobs.store`), so subscribers hear it."""
    requeued: list[str] = []
    failed: list[str] = []
    for job_id, attempts in orphans.items():
        if job_id in busy:
            continue
        status = await store.recover(job_id, attempts, settings.max_attempts)
        if status is JobStatus.QUEUED:
            requeued.append(job_id)
        elif status is JobStatus.FAILED:
            failed.append(job_id)
    if requeued or failed:
        log.warning("recovery: re-queued %s, failed %s", requeued, failed)
    return requeued, failed
