"""Removing blobs nothing refers to, and scratch files a crash left behind.

Left alone, storage only grows: outputs of jobs whose row never got written (the bridge died
between the actor's upload and the commit), images of deleted files, deletes that failed
while the store was away, scratch copies of a killed actor. The sweep compares what the
store holds with what the database refers to and removes the difference, but only objects
older than `sweep_min_age_s`: an upload or a job in flight writes its blob before its row.
Any number of API replicas may sweep at once; every removal is idempotent.

>>> report = await sweep(db, storage, min_age_s=3600)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from jobs.db import Database
from jobs.db import repository as repo
from jobs.storage import Storage, StoredObject

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SweepReport:
    removed: tuple[str, ...]
    scratch_removed: int


def orphaned(obj: StoredObject, refs: repo.References) -> bool:
    """Whether nothing refers to `obj` (its age is checked by the caller)."""
    folder, _, name = obj.key.partition("/")
    if folder == "in":
        return obj.key not in refs.keys
    if folder == "out":
        # A job still QUEUED or RUNNING may be about to register it (out/<job id>.<ext>).
        return obj.key not in refs.keys and name.split(".")[0] not in refs.unfinished_job_ids
    if folder == "parts":
        # parts/<job id>/<i>.w64: a split job's parts wait for its stitch while it runs.
        return name.split("/")[0] not in refs.unfinished_job_ids
    if folder == "img":
        return name.split(".")[0] not in refs.file_ids  # img/<file id>.<kind>.png
    return folder in ("tmp", "scratch")  # scratch under the store's own prefix


async def sweep(
    db: Database, storage: Storage, min_age_s: float, now: datetime | None = None
) -> SweepReport:
    cutoff = (now or datetime.now(UTC)) - timedelta(seconds=min_age_s)
    # Listed before the rows are read; a blob whose row is not committed yet is young, and
    # kept by the age limit alone.
    objects = await asyncio.to_thread(lambda: list(storage.list()))
    async with db.transaction() as session:
        refs = await repo.references(session)
    doomed = [o.key for o in objects if o.modified < cutoff and orphaned(o, refs)]
    for key in doomed:
        await asyncio.to_thread(storage.delete, key)
    scratch = await asyncio.to_thread(storage.remove_stale_scratch, min_age_s)
    if doomed or scratch:
        log.info("sweep removed %d orphaned object(s), %d scratch file(s)", len(doomed), scratch)
    return SweepReport(tuple(doomed), scratch)


async def sweep_forever(
    db: Database, storage: Storage, interval_s: float, min_age_s: float
) -> None:
    """Sweep every `interval_s`; a failed sweep (store or database away) is logged, not fatal."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await sweep(db, storage, min_age_s)
        except Exception:
            log.exception("sweeping storage failed; trying again in %.0f s", interval_s)
