"""The sweep removes exactly the blobs nothing refers to, and only old ones, on both
backends (moto's S3 for the object store) and both databases."""

from __future__ import annotations

import dataclasses
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from job_records import queued_job, stored_file

from jobs.db import Database, writes
from jobs.db import repository as repo
from jobs.models import AudioFile
from jobs.settings import Settings
from jobs.storage import Storage, open_storage
from jobs.store import JobStore
from jobs.sweep import sweep


@pytest.fixture
def storage(storage_url: str, tmp_path: Path) -> Storage:
    return open_storage(Settings(data_dir=tmp_path / "data", storage_url=storage_url))


async def _file(db: Database, key: str, role: str = "input") -> AudioFile:
    template = await stored_file(db, role=role)
    async with db.transaction() as s:
        await writes.mark_file_deleted(s, template.id)  # only its id and fields are reused
    row = dataclasses.replace(template, id=repo.new_id(), storage_key=key)
    return await JobStore(db).add_file(row)


def _put(storage: Storage, key: str) -> None:
    with storage.writing(key) as tmp:
        tmp.write_bytes(b"blob " + key.encode())


async def test_sweep_removes_orphans_and_keeps_the_rest(
    database: Database, storage: Storage
) -> None:
    live = await _file(database, "in/live.wav")
    gone = await _file(database, "in/gone.wav")
    async with database.transaction() as s:
        await writes.mark_file_deleted(s, gone.id)  # its delete failed while the store was away
    output = await _file(database, "out/done.wav", role="output")
    running = await queued_job(database, live.id)
    keep = [
        live.storage_key,
        output.storage_key,
        f"out/{running.id}.wav",  # a job in flight may still register it
        f"img/{live.id}.waveform.png",
        f"parts/{running.id}/0.w64",  # a split job's part waiting for its stitch
        "other/unknown.bin",  # not ours to judge
    ]
    remove = [
        gone.storage_key,
        "in/never-registered.wav",  # the API died between storing and registering
        "out/no-such-job.flac",  # the bridge died between the upload and the commit
        f"img/{gone.id}.spectrogram.png",
        "scratch/left-by-a-crash.wav",
        "parts/no-such-job/3.w64",  # its bridge died before the stitch removed it
    ]
    for key in keep + remove:
        _put(storage, key)
    # A split job's output its parts were writing in place when the bridge died (a storage
    # folder only: object storage has none).
    assembly = storage.assembly("out/crashed-split-job.wav")
    stale_files = [] if assembly is None else [assembly]
    for path in stale_files:
        path.write_bytes(b"half an output")
    with storage.scratch(".wav") as stale:
        stale.write_bytes(b"half a download")
        stale_files.append(stale)

        # Everything is younger than the age limit: nothing goes.
        young = await sweep(database, storage, min_age_s=3600)
        assert young.removed == ()
        assert young.scratch_removed == 0
        assert all(path.exists() for path in stale_files)

        old = time.time() - 7200
        for path in stale_files:
            os.utime(path, (old, old))
        later = datetime.now(UTC) + timedelta(hours=2)
        report = await sweep(database, storage, min_age_s=3600, now=later)
        assert sorted(report.removed) == sorted(remove)
        assert report.scratch_removed == len(stale_files)
        assert not any(path.exists() for path in stale_files)
    assert sorted(o.key for o in storage.list()) == sorted(keep)
