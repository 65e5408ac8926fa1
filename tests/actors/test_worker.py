"""The actors through the pool, on a real local Ray: progress, results, cache, cancel, death,
timeout. Long inputs are made of many small blocks (block_frames 4096) so there is always
time to act between two of them."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import ray
import soundfile as sf

from actors.impulses import uncached_impulses
from actors.pool import ActorPool
from actors.runner import process_file
from actors.worker import NAMESPACE
from jobs.contract import JobMessage
from jobs.effects import parse_chain
from jobs.errors import JobCancelled, JobTimeout, UnknownEffect, UnsupportedAudio
from tests.conftest import sine, write_wav

GAIN_EQ = [
    {"gain": {"db": -3}},
    {"eq": {"bands": [{"kind": "PEAK", "frequency": 1000, "q": 1.0, "gainDb": 4}]}},
]


def _message(input_key: str, effects: list[dict[str, Any]], **kw: Any) -> JobMessage:
    job_id = uuid.uuid4().hex
    return JobMessage(
        job_id=job_id,
        input_key=input_key,
        output_key=f"out/{job_id}.wav",
        output_format="WAV",
        output_subtype="FLOAT",
        effects=effects,
        **kw,
    )


@pytest.fixture
def long_input(storage_root: Path) -> str:
    """120 s of mono noise: ~1400 blocks."""
    key = "in/long.wav"
    if not (storage_root / key).exists():
        rng = np.random.default_rng(5)
        audio = (0.1 * rng.standard_normal((1, 120 * 48_000))).astype(np.float32)
        write_wav(storage_root / key, audio)
    return key


async def test_short_job_output_matches_runner(
    pool: ActorPool, storage_root: Path, wav_file: Path
) -> None:
    (storage_root / "in/tone.wav").write_bytes(wav_file.read_bytes())
    message = _message("in/tone.wav", GAIN_EQ)
    result = await pool.run(message, _ignore)
    out = storage_root / result.output_key
    assert out.is_file() and result.size_bytes == out.stat().st_size
    assert (result.sample_rate, result.channels, result.frames) == (48_000, 2, 48_000)

    local = wav_file.parent / "local.wav"
    process_file(
        wav_file,
        local,
        parse_chain(GAIN_EQ, 48_000),
        "WAV",
        "FLOAT",
        pool.settings.block_frames,
        uncached_impulses({}),
    )
    # Samples, not bytes: libsndfile stamps a float WAV's PEAK chunk with the second it wrote it.
    service_audio, service_rate = sf.read(out, dtype="float32")
    local_audio, local_rate = sf.read(local, dtype="float32")
    assert service_rate == local_rate and np.array_equal(service_audio, local_audio)


async def test_second_job_with_the_same_uploaded_ir_is_a_cache_hit(
    pool: ActorPool, storage_root: Path
) -> None:
    ir = np.zeros((2, 2400), dtype=np.float32)
    ir[:, 0] = 0.5
    write_wav(storage_root / "in/ir.wav", ir)
    write_wav(storage_root / "in/short.wav", sine(220.0, 0.5))
    ir_id = uuid.uuid4().hex
    effects = [{"reverb": {"impulse": ir_id, "mix": 0.5}}]

    async def ignore(_p: float) -> None:
        return None

    first = await pool.run(_message("in/short.wav", effects, impulses={ir_id: "in/ir.wav"}), ignore)
    before = {s["name"]: s for s in await pool.stats()}[first.actor]
    second = await pool.run(
        _message("in/short.wav", effects, impulses={ir_id: "in/ir.wav"}), ignore
    )
    after = {s["name"]: s for s in await pool.stats()}[second.actor]
    assert second.actor == first.actor  # the pool prefers the actor holding the IR
    assert ir_id in after["cached_irs"]
    assert after["cache_hits"] == before["cache_hits"] + 1
    assert after["cache_misses"] == before["cache_misses"]


async def _first_progress(pool: ActorPool, message: JobMessage) -> tuple[asyncio.Task[Any], str]:
    """Start a job and return once it has reported progress, with the actor running it."""
    started = asyncio.Event()

    async def progress(_p: float) -> None:
        started.set()

    task = asyncio.create_task(pool.run(message, progress))
    await started.wait()
    stats = await pool.stats()
    actor = next(s["name"] for s in stats if s.get("current_job") == message.job_id)
    return task, actor


async def test_cancel_mid_job_stops_it_and_leaves_no_output(
    pool: ActorPool, storage_root: Path, long_input: str
) -> None:
    message = _message(long_input, GAIN_EQ)
    task, _ = await _first_progress(pool, message)
    assert await pool.cancel(message.job_id)
    with pytest.raises(JobCancelled):
        await task
    out = storage_root / message.output_key
    assert not out.exists()
    assert not [p for p in out.parent.glob(f".{out.name}*")]  # no temporary left either


async def test_unsupported_input_keeps_its_code(pool: ActorPool, storage_root: Path) -> None:
    (storage_root / "in/junk.wav").write_bytes(b"junk" * 100)

    async def ignore(_p: float) -> None:
        return None

    with pytest.raises(UnsupportedAudio) as caught:
        await pool.run(_message("in/junk.wav", GAIN_EQ), ignore)
    assert caught.value.code == "UNSUPPORTED_AUDIO"
    assert "not decodable" in caught.value.message


async def test_timeout_raises_job_timeout(
    pool: ActorPool, storage_root: Path, long_input: str
) -> None:
    message = _message(long_input, [{"reverb": {"impulse": "hall"}}], timeout_s=0.3)

    async def ignore(_p: float) -> None:
        return None

    with pytest.raises(JobTimeout):
        await pool.run(message, ignore)
    # The actor was told to stop: its job ends and the output never appears.
    for _ in range(100):
        if not any(s.get("current_job") == message.job_id for s in await pool.stats()):
            break
        await asyncio.sleep(0.1)
    assert not (storage_root / message.output_key).exists()


@pytest.mark.slow
async def test_killed_actor_mid_job_is_retried_on_another(
    pool: ActorPool, storage_root: Path, long_input: str
) -> None:
    message = _message(long_input, GAIN_EQ)
    task, actor = await _first_progress(pool, message)
    handle = await asyncio.to_thread(ray.get_actor, actor, NAMESPACE)
    await asyncio.to_thread(ray.kill, handle, no_restart=False)
    result = await task
    assert result.actor != actor
    info = sf.info(str(storage_root / result.output_key))
    assert info.frames == 120 * 48_000
    # Ray restarts the killed actor: the pool is whole again.
    for _ in range(300):
        if all("error" not in s for s in await pool.stats()):
            break
        await asyncio.sleep(0.2)
    assert all("error" not in s for s in await pool.stats())


async def _ignore(_p: float) -> None:
    return None


async def test_jobs_with_the_same_ir_stay_on_the_actor_holding_it(
    pool: ActorPool, storage_root: Path
) -> None:
    """Without affinity the pool would alternate (fewest jobs started first); with it every
    job with the IR goes to the actor that built its spectrum, and only the first misses."""
    ir = np.zeros((2, 4800), dtype=np.float32)
    ir[:, 0], ir[:, 2400] = 0.7, 0.2
    write_wav(storage_root / "in/ir-affinity.wav", ir)
    write_wav(storage_root / "in/short-affinity.wav", sine(330.0, 0.25))
    ir_id = uuid.uuid4().hex
    effects = [{"reverb": {"impulse": ir_id, "mix": 0.3}}]
    uploads = {ir_id: "in/ir-affinity.wav"}

    first = await pool.run(_message("in/short-affinity.wav", effects, impulses=uploads), _ignore)
    before = {s["name"]: s for s in await pool.stats()}
    actors = [first.actor]
    for _ in range(3):
        result = await pool.run(
            _message("in/short-affinity.wav", effects, impulses=uploads), _ignore
        )
        actors.append(result.actor)
    after = {s["name"]: s for s in await pool.stats()}
    assert set(actors) == {first.actor}
    assert after[first.actor]["cache_hits"] == before[first.actor]["cache_hits"] + 3
    assert after[first.actor]["cache_misses"] == before[first.actor]["cache_misses"]
    others = [name for name in after if name != first.actor]
    assert all(ir_id not in after[name]["cached_irs"] for name in others)


async def test_preset_spectra_are_built_at_start_not_per_job(
    pool: ActorPool, storage_root: Path
) -> None:
    write_wav(storage_root / "in/short-preset.wav", sine(440.0, 0.25))
    before = {s["name"]: s for s in await pool.stats()}
    assert all({"room", "hall", "plate"} <= set(s["cached_irs"]) for s in before.values())
    result = await pool.run(
        _message("in/short-preset.wav", [{"reverb": {"impulse": "plate"}}]), _ignore
    )
    after = {s["name"]: s for s in await pool.stats()}[result.actor]
    assert after["cache_hits"] == before[result.actor]["cache_hits"] + 1
    assert after["cache_misses"] == before[result.actor]["cache_misses"]


async def test_result_carries_input_and_output_analysis(
    pool: ActorPool, storage_root: Path
) -> None:
    write_wav(storage_root / "in/minus6.wav", sine(997.0, 2.0, channels=2, level_db=-6.0))
    result = await pool.run(_message("in/minus6.wav", [{"gain": {"db": 12}}]), _ignore)
    source, output = result.input_analysis, result.output_analysis
    assert source is not None and output is not None
    assert source.peak_db == pytest.approx(-6.0, abs=0.01)
    assert source.rms_db == pytest.approx(-9.01, abs=0.05)  # a sine's RMS is 3.01 dB under
    assert source.loudness_lufs is not None and -12.0 < source.loudness_lufs < -5.0
    assert source.duration_seconds == pytest.approx(2.0) and not source.clipping
    # +12 dB over a -6 dBFS sine is +6 dBFS: written as FLOAT it is kept, and it clips.
    assert output.peak_db == pytest.approx(6.0, abs=0.01) and output.clipping


@pytest.mark.slow
async def test_sigkilled_actor_process_is_replaced_and_its_job_retried(
    pool: ActorPool, storage_root: Path, long_input: str
) -> None:
    message = _message(long_input, GAIN_EQ)
    task, actor = await _first_progress(pool, message)
    pid = next(s["pid"] for s in await pool.stats() if s["name"] == actor)
    os.kill(pid, signal.SIGKILL)
    result = await asyncio.wait_for(task, 120)
    # A crashed process may be the job's doing: it is retried only on the slot it already
    # took down, now with a fresh actor, never on a second one (POISON_INPUT if it dies again).
    assert result.actor == actor
    assert sf.info(str(storage_root / result.output_key)).frames == 120 * 48_000
    for _ in range(300):  # the pool replaced the process: it is whole again
        stats = await pool.stats()
        if all("error" not in s for s in stats):
            break
        await asyncio.sleep(0.2)
    replaced = next(s for s in stats if s["name"] == actor)
    assert "error" not in replaced and replaced["pid"] != pid


async def test_progress_of_a_long_job_is_polled_while_it_runs(
    pool: ActorPool, storage_root: Path, long_input: str
) -> None:
    seen: list[float] = []

    async def progress(p: float) -> None:
        seen.append(p)

    result = await pool.run(_message(long_input, GAIN_EQ), progress)
    assert len(seen) >= 2 and seen == sorted(seen) and seen[0] >= 0.0 and seen[-1] <= 1.0
    assert sf.info(str(storage_root / result.output_key)).frames == 120 * 48_000


@pytest.mark.slow
async def test_idle_actor_killed_for_good_is_replaced_every_time(pool: ActorPool) -> None:
    """Ray restarts nothing (a lifetime restart budget ran out under hostile input and left
    the pool empty): the pool's watchdog replaces a dead actor, however often it dies."""
    name = f"{pool.settings.queue_prefix}-dsp-0"
    for _ in range(3):
        before = pool.replaced
        handle = await asyncio.to_thread(ray.get_actor, name, NAMESPACE)
        await asyncio.to_thread(ray.kill, handle, no_restart=True)
        for _ in range(600):
            stats = await pool.stats()
            if pool.replaced > before and all("error" not in s for s in stats):
                break
            await asyncio.sleep(0.1)
        assert pool.replaced > before and all("error" not in s for s in stats), stats


async def test_an_error_built_from_other_arguments_arrives_as_itself(
    pool: ActorPool, storage_root: Path, long_input: str
) -> None:
    """`UnknownEffect(name)` cannot be rebuilt from its message alone: it crosses Ray through
    `EngineError.__reduce__`, same class, code and message."""

    async def ignore(_p: float) -> None:
        return None

    with pytest.raises(UnknownEffect) as caught:
        await pool.run(_message(long_input, [{"wah": {}}]), ignore)
    assert (caught.value.code, caught.value.message) == ("BAD_INPUT", "unknown effect 'wah'")
