"""One long file across two actors: segmenting on, then off, against the machine's own scaling.

    .venv/bin/python -m benchmarks.segments [--minutes 60] [--segment-seconds 300]
                                            [--bare-minutes 5] [--smoke]

One `--minutes` stereo 48 kHz file (tones under a moving envelope, plus noise, PCM_16)
through eq + hall reverb + compressor + limiter, on a local Ray pool of 2 actors (1 CPU
each, local storage, no broker: `ActorPool.run` as the bridge calls it):
1. split into segments of `--segment-seconds` (parts on both actors, then the stitch);
2. the same job unsplit (`segment_seconds` 0): one actor from start to end;
(1 and 2 alternate `--repeat` times; the best of each is kept)
3. split again, with one of the two actors held busy: the split job on 1 actor.
Speed-up = 2 / 1. The reference is the same DSP (`process_file`) in bare processes on a
`--bare-minutes` excerpt: jobs/s with two processes at once over one process alone. Each
actor's peak RSS (VmHWM) is read after run 1 and after run 2.
The model: T(N) = S + ceil(k / N) p, S the serial part (plan + stitch, plus on object
storage the inputs' download and the output's upload), k parts of mean render time p, is
checked against runs 1 and 3. Run 1's parts share the machine two at a time, so their p
carries its two-process slowdown c (the bare reference's time each of two / time alone);
an actor alone, as on one node each, renders a part in p / c, which predicts run 3.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

RATE = 48_000
CHAIN: list[dict[str, Any]] = [
    {"eq": {"bands": [
        {"kind": "LOWSHELF", "frequency": 120.0, "gainDb": 3.0},
        {"kind": "PEAK", "frequency": 2500.0, "q": 1.0, "gainDb": -2.0},
    ]}},
    {"reverb": {"impulse": "hall", "mix": 0.25}},
    {"compressor": {"thresholdDb": -20.0, "ratio": 3.0, "attackMs": 10.0, "releaseMs": 120.0}},
    {"limiter": {"ceilingDb": -1.0, "releaseMs": 60.0}},
]  # fmt: skip


def write_input(path: Path, minutes: float) -> None:
    """Seeded signal, written a block at a time (never held whole)."""
    rng = np.random.default_rng(18)
    total = int(minutes * 60 * RATE)
    with sf.SoundFile(str(path), "w", RATE, 2, subtype="PCM_16") as out:
        for start in range(0, total, 1 << 20):
            n = min(1 << 20, total - start)
            t = (start + np.arange(n)) / RATE
            env = 0.1 + 0.9 * np.abs(np.sin(2 * np.pi * 0.05 * t)) ** 2
            tone = 0.4 * np.sin(2 * np.pi * 220.0 * t) * env
            out.write((tone[:, None] + 0.05 * rng.standard_normal((n, 2))).astype(np.float32))


def _bare(path: str, out: str, seconds: Any) -> None:
    """In a bare process: the chain over `path` once (after a warm-up); its seconds."""
    from actors.impulses import IRCache
    from actors.runner import process_file
    from dsp.warmup import warmup
    from jobs.effects import parse_chain

    warmup()
    cache = IRCache(2**30)
    cache.preload_presets((RATE,))
    calls = parse_chain(CHAIN, RATE)
    start = time.perf_counter()
    process_file(Path(path), Path(out), calls, "WAV", "PCM_16", 65536, cache.for_job({}))
    seconds.put(time.perf_counter() - start)
    Path(out).unlink()


BARE_ORDER = (1, 2, 2, 1)
"""Process counts of the reference's runs in order: each count's mean comes from runs placed
symmetrically in time, so a load drifting through the reference weighs on both alike."""


def bare_ratio(path: Path) -> tuple[float, float]:
    """Mean seconds of one bare process alone, and of two at once (same job each, the slower
    of the two), over `BARE_ORDER`."""
    found: dict[int, list[float]] = {1: [], 2: []}
    for procs in BARE_ORDER:
        seconds: Any = multiprocessing.Queue()
        workers = [
            multiprocessing.Process(target=_bare, args=(str(path), f"{path}.bare{i}.wav", seconds))
            for i in range(procs)
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        found[procs].append(max(seconds.get() for _ in workers))
    return statistics.mean(found[1]), statistics.mean(found[2])


def _hwm_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return math.nan


async def run_pool(work: Path, minutes: float, segment_s: float, repeat: int) -> dict[str, Any]:
    from actors.pool import ActorPool
    from jobs.contract import JobMessage
    from jobs.settings import Settings

    settings = Settings(
        data_dir=work,
        queue_prefix=f"bench-seg-{uuid.uuid4().hex[:6]}",
        pool_size=2,
        actor_num_cpus=1.0,
        segment_seconds=segment_s,
        job_timeout_s=24 * 3600,
    )
    storage = settings.storage_path
    (storage / "in").mkdir(parents=True, exist_ok=True)
    write_input(storage / "in/long.wav", minutes)
    seconds_in = minutes * 60
    pool = await ActorPool.start(settings)
    found: dict[str, Any] = {}
    try:

        async def job(label: str) -> float:
            job_id = uuid.uuid4().hex
            message = JobMessage(
                job_id=job_id,
                input_key="in/long.wav",
                output_key=f"out/{job_id}.wav",
                output_format="WAV",
                output_subtype="PCM_16",
                effects=CHAIN,
                timeout_s=24 * 3600,
            )

            async def ignore(_value: float) -> None:
                return None

            start = time.perf_counter()
            result = await pool.run(message, ignore, input_seconds=seconds_in)
            elapsed = time.perf_counter() - start
            found[f"{label}_segments"] = result.segments
            (storage / result.output_key).unlink()
            return elapsed

        pids = [s["pid"] for s in await pool.stats()]
        found["on_all"], found["off_all"] = [], []
        for _ in range(repeat):  # alternated, so a change of load hits both alike
            pool.settings = settings
            found["on_all"].append(await job("on"))
            if found["on_all"][-1] == min(found["on_all"]):
                found["times_on"] = pool.last_split
            found.setdefault("rss_on", [_hwm_mib(p) for p in pids])
            pool.settings = settings.model_copy(update={"segment_seconds": 0.0})
            found["off_all"].append(await job("off"))
            found.setdefault("rss_off", [_hwm_mib(p) for p in pids])
        found["on"], found["off"] = min(found["on_all"]), min(found["off_all"])
        pool.settings = settings
        held = pool._slots[1]  # one actor held busy: the split job on one actor
        held.job_id = "held-by-benchmark"
        found["one"] = await job("one")
        found["times_one"] = pool.last_split
        held.job_id = None
    finally:
        await pool.shutdown()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--segment-seconds", type=float, default=300.0)
    parser.add_argument("--bare-minutes", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=2, help="split/unsplit pairs (best kept)")
    parser.add_argument("--smoke", action="store_true", help="tiny input: checks it runs")
    args = parser.parse_args()
    if args.smoke:
        args.minutes, args.segment_seconds, args.bare_minutes, args.repeat = 0.6, 10.0, 0.1, 1
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-segments-") as tmp:
        work = Path(tmp)
        found = asyncio.run(run_pool(work, args.minutes, args.segment_seconds, args.repeat))
        excerpt = work / "excerpt.wav"
        write_input(excerpt, args.bare_minutes)
        one, two = bare_ratio(excerpt)
    bare = 2 * one / two
    speedup = found["off"] / found["on"]
    print(
        f"{args.minutes:g} min stereo 48 kHz, eq + hall + compressor + limiter, 2 actors, "
        f"segments of {args.segment_seconds:g} s; load before {load[0]:.1f} {load[1]:.1f}, "
        f"after {os.getloadavg()[0]:.1f}"
    )
    every = ", ".join(f"{t:.1f}" for t in found["on_all"])
    print(f"split    {found['on_segments']:3d} segments {found['on']:8.1f} s  (runs: {every})")
    every = ", ".join(f"{t:.1f}" for t in found["off_all"])
    print(f"unsplit  {found['off_segments']:3d} segment  {found['off']:8.1f} s  (runs: {every})")
    print(f"split on 1 actor  {found['one_segments']:3d}      {found['one']:8.1f} s")
    print(f"speed-up on / off: {speedup:.2f}x")
    print(
        f"bare DSP on {args.bare_minutes:g} min: 1 process {one:.1f} s, 2 at once {two:.1f} s "
        f"each: two-process ratio {bare:.2f}x; split speed-up / bare ratio {speedup / bare:.2f}"
    )
    print(
        "peak RSS per actor (MiB) after split: "
        + ", ".join(f"{r:.0f}" for r in found["rss_on"])
        + "; after unsplit: "
        + ", ".join(f"{r:.0f}" for r in found["rss_off"])
    )
    times = found["times_on"]
    if times is not None:
        parts = len(times.part_dsp_s)
        shared = sum(times.part_dsp_s) / parts
        serial = found["on"] - times.parts_s
        slowdown = two / one
        for n, p, measured in ((2, shared, found["on"]), (1, shared / slowdown, found["one"])):
            rounds = math.ceil(parts / n)
            print(
                f"model T({n}) = serial {serial:.1f} s + {rounds} rounds x part {p:.2f} s: "
                f"{serial + rounds * p:.1f} s predicted, {measured:.1f} s measured"
            )
        print(
            f"(a part takes {shared:.2f} s with both actors busy; alone, as on one node each, "
            f"{shared / slowdown:.2f} s: the bare two-process slowdown {slowdown:.3f} divided out)"
        )


if __name__ == "__main__":
    main()
