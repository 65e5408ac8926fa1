"""Job reads against real SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from job_records import queued_job, stored_file

from jobs.db import Database
from jobs.db import repository as repo
from jobs.errors import BadInput, JobNotFound


async def test_unknown_job_and_bad_cursor(database: Database) -> None:
    async with database.transaction() as s:
        with pytest.raises(JobNotFound):
            await repo.get_job(s, "nope")
        with pytest.raises(BadInput, match="invalid cursor"):
            await repo.list_jobs(s, after="!!")


async def test_jobs_page_newest_first(database: Database) -> None:
    f = await stored_file(database)
    ids = []
    for _ in range(5):
        ids.append((await queued_job(database, f.id)).id)
    seen: list[str] = []
    cursor = None
    async with database.transaction() as s:
        while True:
            page, more = await repo.list_jobs(s, first=2, after=cursor)
            seen += [j.id for j in page]
            if not more:
                break
            cursor = repo.encode_cursor(page[-1])
    assert seen == ids[::-1]
