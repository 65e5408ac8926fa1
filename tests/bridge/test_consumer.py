"""The bridge end to end: RabbitMQ -> bridge -> Ray actors -> SQLite, events back out."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest
import ray
import soundfile as sf

from actors.pool import ActorPool
from actors.runner import measure_file
from jobs.contract import ControlMessage
from jobs.db import repository as repo
from jobs.errors import ProcessingFailed
from jobs.outbox import JOB, pending_outbox
from jobs.settings import Settings
from jobs.states import JobStatus
from tests.bridge.conftest import Harness, RunningBridge, pool_settings
from tests.conftest import write_wav

GAIN = [{"gain": {"db": -6}}]


@pytest.fixture
def long_wav(tmp_path: Path) -> Path:
    rng = np.random.default_rng(9)
    return write_wav(
        tmp_path / "long.wav", (0.1 * rng.standard_normal((1, 120 * 48_000))).astype(np.float32)
    )


async def test_job_succeeds_with_output_row_events_and_ack(
    harness: Harness, wav_file: Path
) -> None:
    source = await harness.add_input("tone.wav", wav_file)
    message = await harness.submit(source, GAIN)
    job = await harness.wait_for(message.job_id)
    assert job.status is JobStatus.SUCCEEDED, job.error_message
    assert job.progress == 1.0 and job.dsp_seconds is not None and job.attempts == 1
    async with harness.db.transaction() as s:
        out = (await repo.get_files(s, [job.output_file_id or ""]))[job.output_file_id or ""]
    assert out.role == "output" and out.filename == "tone.processed.wav"
    assert out.frames == 48_000 and out.storage_key == message.output_key
    assert out.size_bytes == (harness.storage / out.storage_key).stat().st_size
    got, _ = sf.read(harness.storage / out.storage_key, dtype="float32")
    want, _ = sf.read(wav_file, dtype="float32")
    np.testing.assert_allclose(got, want * 10 ** (-6 / 20), atol=1e-6)

    for _ in range(100):  # the SUCCEEDED event may trail the row by a moment
        if any(e.status is JobStatus.SUCCEEDED for e in harness.events):
            break
        await asyncio.sleep(0.05)
    statuses = [e.status for e in harness.events if e.job_id == message.job_id]
    assert statuses[0] is JobStatus.RUNNING and statuses[-1] is JobStatus.SUCCEEDED
    await harness.bridge.stop()  # unacked messages would now return to the queue
    assert await harness.ready_messages(harness.settings.jobs_queue) == 0


async def test_undecodable_input_fails_and_the_next_job_succeeds(
    harness: Harness, wav_file: Path, tmp_path: Path
) -> None:
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"definitely not audio" * 50)
    bad = await harness.submit(await harness.add_input("junk.wav", junk), GAIN)
    good = await harness.submit(await harness.add_input("tone.wav", wav_file), GAIN)
    failed = await harness.wait_for(bad.job_id)
    assert failed.status is JobStatus.FAILED
    assert failed.error_code == "UNSUPPORTED_AUDIO" and "not decodable" in (
        failed.error_message or ""
    )
    assert not (harness.storage / bad.output_key).exists()
    assert (await harness.wait_for(good.job_id)).status is JobStatus.SUCCEEDED


async def test_redelivered_finished_job_is_acked_without_running(
    harness: Harness, wav_file: Path
) -> None:
    source = await harness.add_input("tone.wav", wav_file)
    message = await harness.create_job(source, GAIN)
    await harness.store.start(message.job_id, "elsewhere")
    await harness.store.fail(message.job_id, ProcessingFailed("x"))
    before = await harness.job(message.job_id)
    await harness.broker.publish_job(message.encode())
    # A job published after it is handled in order behind it (prefetch order on one queue).
    marker = await harness.submit(source, GAIN)
    await harness.wait_for(marker.job_id)
    after = await harness.job(message.job_id)
    assert after == before
    assert not (harness.storage / message.output_key).exists()
    await harness.bridge.stop()
    assert await harness.ready_messages(harness.settings.jobs_queue) == 0


async def test_unknown_contract_version_is_dead_lettered_and_fails_the_job(
    harness: Harness, wav_file: Path
) -> None:
    source = await harness.add_input("tone.wav", wav_file)
    message = await harness.create_job(source, GAIN)
    body = json.loads(message.encode())
    body["version"] = 99
    await harness.broker.publish_job(json.dumps(body).encode())
    await harness.broker.publish_job(b"not even json")  # no job id: dropped after logging
    job = await harness.wait_for(message.job_id)
    assert job.status is JobStatus.FAILED and job.error_code == "BAD_MESSAGE"
    assert "unknown contract version 99" in (job.error_message or "")
    await harness.bridge.stop()
    for queue in (harness.settings.jobs_queue, harness.settings.dead_letter_queue):
        assert await harness.ready_messages(queue) == 0


async def test_cancel_through_the_control_exchange(harness: Harness, long_wav: Path) -> None:
    source = await harness.add_input("long.wav", long_wav)
    message = await harness.submit(source, [{"reverb": {"impulse": "hall"}}])
    await harness.wait_for(message.job_id, JobStatus.RUNNING)
    await harness.broker.publish_control(ControlMessage(kind="cancel", job_id=message.job_id))
    job = await harness.wait_for(message.job_id)
    assert job.status is JobStatus.CANCELLED and job.error_code == "CANCELLED"
    assert not (harness.storage / message.output_key).exists()
    assert (await harness.job(message.job_id)).output_file_id is None


async def test_recovery_requeues_a_job_left_running(
    bridge_settings: Settings, shared_pool: ActorPool, wav_file: Path
) -> None:
    async with RunningBridge(bridge_settings, shared_pool, start=False) as harness:
        source = await harness.add_input("tone.wav", wav_file)
        message = await harness.create_job(source, GAIN)  # stored, never published
        await harness.store.start(message.job_id, "a bridge that died")
        await harness.bridge.start()
        job = await harness.wait_for(message.job_id)
        assert job.status is JobStatus.SUCCEEDED and job.attempts == 2


async def test_recovery_leaves_a_job_whose_message_comes_back(
    bridge_settings: Settings, shared_pool: ActorPool, wav_file: Path
) -> None:
    """A killed bridge's unacked message returns by itself: the sweep must not add a copy
    (that would reset the delivery count a poison job needs to be dead-lettered)."""
    async with RunningBridge(bridge_settings, shared_pool, start=False) as harness:
        source = await harness.add_input("tone.wav", wav_file)
        message = await harness.submit(source, GAIN)  # published: it "comes back"
        await harness.store.start(message.job_id, "a bridge that died")
        await harness.bridge.start()
        job = await harness.wait_for(message.job_id)
        assert job.status is JobStatus.SUCCEEDED and job.attempts == 2
        assert harness.bridge.recovery is not None  # it was an orphan at start
        await harness.bridge.recovery  # the sweep looked, and left it alone
        assert (await harness.job(message.job_id)).status is JobStatus.SUCCEEDED
        # A re-queue would have made a QUEUED version between, and a second message the
        # relay would have sent (the queue stays empty below). The job ended, so its stored
        # message is gone from the outbox.
        async with harness.db.transaction() as s:
            assert (await repo.get_job(s, message.job_id)).version == 3  # no QUEUED between
        assert [p for p in await harness.db.run(pending_outbox) if p.kind == JOB] == []
        await harness.bridge.stop()
        assert await harness.ready_messages(harness.settings.jobs_queue) == 0


@pytest.mark.slow
async def test_prefetch_bounds_what_the_bridge_takes(
    bridge_settings: Settings, shared_storage: Path, long_wav: Path
) -> None:
    settings = pool_settings(bridge_settings, shared_storage, pool_size=1, in_flight_extra=1)
    small = await ActorPool.start(settings.model_copy(update={"queue_prefix": "test-one-pool"}))
    try:
        async with RunningBridge(settings, small) as harness:
            assert harness.bridge.prefetch == 2
            source = await harness.add_input("long.wav", long_wav)
            jobs = [
                await harness.submit(source, [{"reverb": {"impulse": "hall"}}]) for _ in range(5)
            ]
            # Either prefetched job may reach the actor first.
            for _ in range(1200):
                statuses = [(await harness.job(j.job_id)).status for j in jobs]
                if JobStatus.RUNNING in statuses:
                    break
                await asyncio.sleep(0.05)
            assert await harness.ready_messages(settings.jobs_queue) == 3
            statuses = [(await harness.job(j.job_id)).status for j in jobs]
            assert statuses.count(JobStatus.RUNNING) == 1  # the other waits for the actor

            # Graceful stop with no grace: in-flight jobs go back to the queue, QUEUED again.
            harness.bridge.stop_grace_s = 0.0
            await harness.bridge.stop()
            assert await harness.ready_messages(settings.jobs_queue) == 5
            statuses = [(await harness.job(j.job_id)).status for j in jobs]
            assert statuses == [JobStatus.QUEUED] * 5
            # The job handed back says so to its subscribers (published before stop returned).
            handed_back = {e.job_id for e in harness.events if e.status is JobStatus.QUEUED}
            async with asyncio.timeout(10):
                while not handed_back:
                    await asyncio.sleep(0.02)
                    handed_back = {e.job_id for e in harness.events if e.status is JobStatus.QUEUED}
            started = {e.job_id for e in harness.events if e.status is JobStatus.RUNNING}
            assert handed_back == started and len(started) == 1
    finally:
        await small.shutdown()


async def test_job_row_records_the_node_and_actor_that_ran_it(
    harness: Harness, wav_file: Path
) -> None:
    source = await harness.add_input("tone.wav", wav_file)
    message = await harness.submit(source, GAIN)
    assert (await harness.wait_for(message.job_id)).status is JobStatus.SUCCEEDED
    async with harness.db.transaction() as s:
        job = await repo.get_job(s, message.job_id)
        analyses = await repo.file_analyses(s, [source.id])
    node_id, actor = job.node_id or "", job.actor or ""
    alive = {n["NodeID"] for n in ray.nodes() if n["Alive"]}  # type: ignore[no-untyped-call]
    assert node_id in alive and actor.startswith("test-bridge-pool-dsp-")
    assert analyses[source.id].duration_seconds == pytest.approx(1.0)


async def test_a_long_input_runs_in_segments_and_an_unsplit_one_says_why(
    harness: Harness, shared_pool: ActorPool, tmp_path: Path
) -> None:
    rng = np.random.default_rng(18)
    audio = (0.1 * rng.standard_normal((2, 42 * 16_000))).astype(np.float32)
    path = write_wav(tmp_path / "long16k.wav", audio, rate=16_000)
    before = shared_pool.settings
    shared_pool.settings = before.model_copy(update={"segment_seconds": 10.0})
    try:
        source = await harness.add_input("long16k.wav", path)
        split = await harness.submit(source, GAIN)
        loud = await harness.submit(source, [*GAIN, {"loudness": {"standard": "STREAMING"}}])
        whole = await harness.submit(source, [*GAIN, {"gate": {"thresholdDb": -40}}])
        job = await harness.wait_for(split.job_id)
        assert job.status is JobStatus.SUCCEEDED, job.error_message
        assert job.segments == 4 and job.message.startswith("running in 4 segments")
        out, _ = sf.read(harness.storage / split.output_key, dtype="float32")
        np.testing.assert_array_equal(
            out.T, (audio.astype(np.float64) * 10 ** (-6 / 20)).astype(np.float32)
        )
        # Two passes in parts: measured, merged, rendered with the merged gain.
        job = await harness.wait_for(loud.job_id)
        assert job.status is JobStatus.SUCCEEDED, job.error_message
        assert job.segments == 4
        delivered = measure_file(harness.storage / loud.output_key)
        assert delivered.loudness_lufs == pytest.approx(-14.0, abs=0.1)
        job = await harness.wait_for(whole.job_id)
        assert job.status is JobStatus.SUCCEEDED, job.error_message
        assert job.segments == 1
        assert "running unsplit: not split: the gate's open or closed state" in job.message
    finally:
        shared_pool.settings = before
