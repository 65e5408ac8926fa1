"""API keys, presets, soft deletion and ownership queries against SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace

import pytest
from job_records import queued_job, stored_file

from jobs.db import Database, writes
from jobs.db import repository as repo
from jobs.errors import ApiKeyNotFound, BadInput, FileNotFound, PresetNotFound
from jobs.states import JobStatus
from jobs.store import JobStore, count_unfinished


async def test_api_keys(database: Database) -> None:
    async with database.transaction() as s:
        assert await repo.count_api_keys(s) == 0
        key = await writes.add_api_key(
            s, name="alice", key_hash="h" * 64, prefix="ae_x", owner="alice", admin=False
        )
    with pytest.raises(BadInput):
        async with database.transaction() as s:
            await writes.add_api_key(
                s, name="alice", key_hash="g" * 64, prefix="ae_y", owner="a", admin=False
            )
    async with database.transaction() as s:
        found = await repo.api_key_by_hash(s, "h" * 64)
        assert found is not None and found[0].id == key.id and found[1] == "h" * 64
        assert (await writes.revoke_api_key(s, "alice")).revoked_at is not None
    async with database.transaction() as s:
        assert await repo.api_key_by_hash(s, "h" * 64) is None
        assert await repo.count_api_keys(s) == 1
        assert [k.name for k in await repo.list_api_keys(s)] == ["alice"]
    with pytest.raises(ApiKeyNotFound):
        async with database.transaction() as s:
            await writes.revoke_api_key(s, "nobody")


async def test_presets(database: Database) -> None:
    async with database.transaction() as s:
        await writes.save_preset(s, "alice", "p", [{"gain": {"db": 1.0}}])
        await writes.save_preset(s, None, "p", [{"gain": {"db": 2.0}}])
    async with database.transaction() as s:
        await writes.save_preset(s, "alice", "p", [{"gain": {"db": 3.0}}])
    async with database.transaction() as s:
        assert (await repo.get_preset(s, "alice", "p")).effects == [{"gain": {"db": 3.0}}]
        assert (await repo.get_preset(s, None, "p")).owner is None
        assert [p.name for p in await repo.list_presets(s, "bob")] == []
        await writes.delete_preset(s, "alice", "p")
    with pytest.raises(PresetNotFound):
        async with database.transaction() as s:
            await writes.delete_preset(s, "alice", "p")


async def test_visibility_deletion_and_quota(database: Database) -> None:
    store = JobStore(database)
    mine = await stored_file(database, "alice")
    ir = await stored_file(database, None, role="output")
    job = await queued_job(database, mine.id, "alice", [{"reverb": {"impulse": ir.id}}])
    assert (await database.run(repo.visible_file, mine.id, "alice")).id == mine.id
    assert (await database.run(repo.visible_file, mine.id, None)).id == mine.id
    with pytest.raises(FileNotFound):
        await database.run(repo.visible_file, mine.id, "bob")
    with pytest.raises(FileNotFound):  # an ownerless output is nobody's yet
        await database.run(repo.visible_file, ir.id, "alice")
    async with database.transaction() as s:
        assert [j.id for j in await repo.unfinished_jobs_using(s, ir.id)] == [job.id]
        assert [j.id for j in await repo.unfinished_jobs_using(s, mine.id)] == [job.id]
    assert await database.run(count_unfinished, "alice") == 1
    assert await database.run(count_unfinished, "bob") == 0
    await store.start(job.id, "dsp-0")
    output = replace(ir, id=repo.new_id())  # ownerless: visible through the job only
    await store.succeed(
        job.id,
        output,
        None,
        input_file_id=mine.id,
        input_analysis=None,
        dsp_seconds=0.1,
        node_id=None,
        actor=None,
    )
    assert (await database.run(repo.visible_file, output.id, "alice")).id == output.id
    with pytest.raises(FileNotFound):
        await database.run(repo.visible_file, output.id, "bob")
    assert await database.run(count_unfinished, "alice") == 0
    async with database.transaction() as s:
        assert await repo.unfinished_jobs_using(s, mine.id) == []
        counts = await repo.count_jobs_by_status(s)
        assert counts[JobStatus.SUCCEEDED] == 1 and counts[JobStatus.QUEUED] == 0
        await writes.mark_file_deleted(s, mine.id)
    with pytest.raises(FileNotFound):
        await database.run(repo.visible_file, mine.id, None)
    async with database.transaction() as s:
        assert set(await repo.get_files(s, [mine.id, output.id])) == {mine.id, output.id}
        assert (await repo.get_job(s, job.id)).input_file_id == mine.id  # history stays
