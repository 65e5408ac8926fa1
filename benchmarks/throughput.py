"""End-to-end throughput of the whole stack: API + RabbitMQ + bridge + Ray actors, each a real
process (`audio-engine api --dev`, `audio-engine bridge`), for pool sizes 1 and 2.

    .venv/bin/python -m benchmarks.throughput [--short 500] [--long 20] [--pools 1 2]

Per pool size: `--short` short jobs (1 s stereo 48 kHz, gain + EQ) queued through GraphQL
before the bridge starts (a backlog: the engine's sustained rate, whatever the API's submit
rate), then a live burst of as many submitted by 8 clients while the bridge runs, then
`--long` long jobs (60 s stereo, EQ + hall reverb), then `--probe` short jobs one at a time
(no queueing), 50 ms apart (an isolated job: every process idle when it comes), then as many
back to back (a client that waits for each job before it sends the next). Figures come from
the job
rows the bridge wrote: end-to-end latency = finished_at - created_at (submit to SUCCEEDED);
DSP time = dsp_seconds, measured inside the actor around the render; service time =
finished_at - started_at (the bridge took the job to its outcome committed). Overhead is
what is not DSP: per job of the unloaded probe, end-to-end minus DSP (API, outbox, RabbitMQ,
bridge, Ray call, database, all included); under the burst, service time minus DSP (queue
wait excluded, since a burst's latency is mostly waiting for the jobs ahead).
The machine's own reference for the long batch is the same DSP in as many bare processes
as the pool has actors, run just before and just after that batch (a shared host's speed
drifts by more than the stack costs over the minutes between pools). The run ends with the
floors an isolated job cannot go under here (RabbitMQ's publish to delivery for a job
message and for an event, and a bare Ray actor call, at both spacings).
Writes `docs/throughput.png` (latency histograms, throughput by pool size).
Needs RabbitMQ on 127.0.0.1:5672. The database is SQLite in a temporary folder, or with
`--postgres postgresql+asyncpg://user@host:5432/db` a fresh PostgreSQL database per pool size
(created and dropped through that URL).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import soundfile as sf
import websockets
from sqlalchemy import select
from websockets.typing import Subprotocol

from cli.client import SUBMIT, graphql, upload
from cli.stack import Stack
from jobs.db import Database
from jobs.db import repository as repo
from jobs.db.tables import JobRow
from jobs.models import Job
from jobs.settings import Settings
from jobs.states import JobStatus

TERMINAL = [status for status in JobStatus if status.terminal]

ROOT = Path(__file__).resolve().parents[1]
PLOT = ROOT / "docs" / "throughput.png"
RATE = 48_000
BANDS = [
    {"kind": "HIGHPASS", "frequency": 80.0},
    {"kind": "PEAK", "frequency": 1000.0, "q": 1.0, "gainDb": 4.0},
]
EQ = {"eq": {"bands": BANDS}}
SHORT_CHAIN = [{"gain": {"db": -3.0}}, EQ]
LONG_CHAIN = [EQ, {"reverb": {"impulse": "hall", "mix": 0.25}}]
CLIENTS = 8
PROBE_GAP_S = 0.05  # between isolated probes (then again back to back), and floors' round trips


@dataclass
class Run:
    """The job rows of one batch: per job (e2e s, dsp s, service s), and the batch's span."""

    name: str
    e2e: list[float]
    dsp: list[float]
    service: list[float]
    span_s: float
    submit_s: float
    drain_s: float

    @property
    def rate(self) -> float:
        return len(self.e2e) / self.span_s

    def overhead(self, queued: bool) -> list[float]:
        base = self.service if queued else self.e2e
        return [b - d for b, d in zip(base, self.dsp, strict=True)]


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def _tone(path: Path, seconds: float) -> Path:
    rng = np.random.default_rng(1)
    t = np.arange(int(seconds * RATE)) / RATE
    audio = 0.3 * np.sin(2 * np.pi * 440 * t)[:, None] + 0.05 * rng.standard_normal((t.size, 2))
    sf.write(str(path), audio.astype(np.float32), RATE, subtype="FLOAT")
    return path


async def _submit(http: httpx.AsyncClient, file_id: str, chain: list[Any], count: int) -> list[str]:
    ids: list[str] = []

    async def client(n: int) -> None:
        for _ in range(n):
            data = await graphql(http, SUBMIT, {"input": {"fileId": file_id, "effects": chain}})
            ids.append(data["submitJob"]["id"])

    shares = [count // CLIENTS + (1 if i < count % CLIENTS else 0) for i in range(CLIENTS)]
    await asyncio.gather(*(client(n) for n in shares if n))
    return ids


async def _rows(db: Database, ids: list[str], timeout_s: float, poll_s: float = 1.0) -> list[Job]:
    """The jobs' rows once all ended. Figures come from the rows' timestamps, so polling
    rarely costs no accuracy; each poll reads only the status of the jobs not yet seen to end
    (it runs on the cores it measures: reading every job's row each second took CPU from the
    actors once a thousand jobs were in the table)."""
    pending = set(ids)
    deadline = time.monotonic() + timeout_s
    while pending:
        async with db.transaction() as s:
            ended = await s.scalars(
                select(JobRow.id).where(
                    JobRow.id.in_(pending), JobRow.status.in_([t.value for t in TERMINAL])
                )
            )
            pending -= set(ended)
        if not pending:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(ids) - len(pending)}/{len(ids)} jobs done after {timeout_s}s")
        await asyncio.sleep(poll_s)
    async with db.transaction() as s:
        rows = [await repo.get_job(s, job_id) for job_id in ids]
    bad = [r for r in rows if r.status != "SUCCEEDED"]
    if bad:
        raise RuntimeError(f"{len(bad)} jobs did not succeed: {bad[0].error_message}")
    return rows


def _run(name: str, rows: list[Job]) -> Run:
    def s(a: Any, b: Any) -> float:
        return float((a - b).total_seconds())

    first = min(r.created_at for r in rows)
    last = max(r.finished_at for r in rows)
    return Run(
        name,
        e2e=[s(r.finished_at, r.created_at) for r in rows],
        dsp=[float(r.dsp_seconds or 0.0) for r in rows],
        service=[s(r.finished_at, r.started_at) for r in rows],
        span_s=s(last, first),
        submit_s=s(max(r.created_at for r in rows), first),
        drain_s=s(last, min(r.started_at for r in rows)),
    )


async def _batch(
    http: httpx.AsyncClient, db: Database, file_id: str, chain: list[Any], count: int, name: str
) -> Run:
    ids = await _submit(http, file_id, chain, count)
    return _run(name, await _rows(db, ids, timeout_s=1800))


EVENTS = "subscription { myJobUpdates { jobId status } }"


async def _probe(
    http: httpx.AsyncClient, db: Database, server: str, file_id: str, count: int, gap_s: float
) -> tuple[Run, list[float]]:
    """One job at a time, as a client sees it: from sending `submitJob` to receiving the
    job's SUCCEEDED event over a `myJobUpdates` subscription (opened once, beforehand); the
    next job goes `gap_s` after the previous one's row is read. Returns the jobs' rows and
    those client-side latencies."""
    url = server.replace("http", "ws", 1).rstrip("/") + "/graphql"
    rows: list[Job] = []
    seen: list[float] = []
    async with websockets.connect(url, subprotocols=[Subprotocol("graphql-transport-ws")]) as ws:
        await ws.send(json.dumps({"type": "connection_init"}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        payload = {"query": EVENTS}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        for _ in range(count):
            sent = time.perf_counter()
            [job_id] = await _submit(http, file_id, SHORT_CHAIN, 1)
            while True:
                message = json.loads(await asyncio.wait_for(ws.recv(), 60))
                event = message["payload"]["data"]["myJobUpdates"]
                if event["jobId"] == job_id and event["status"] == "SUCCEEDED":
                    seen.append(time.perf_counter() - sent)
                    break
            rows += await _rows(db, [job_id], timeout_s=60, poll_s=0.05)
            await asyncio.sleep(gap_s)
    return _run("probe", rows), seen


async def _admin(url: str, sql: str) -> None:
    admin = Database(url)
    try:
        async with admin.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.exec_driver_sql(sql)
    finally:
        await admin.close()


def _db(stack: Stack, db_url: str) -> Database:
    return Database(db_url or f"sqlite+aiosqlite:///{stack.data_dir / 'audio-engine.db'}")


async def _preload(stack: Stack, work: Path, short: int) -> tuple[str, str, list[str]]:
    """Upload the inputs and queue `short` jobs while no bridge runs (a backlog to drain)."""
    async with httpx.AsyncClient(base_url=stack.url, timeout=120) as http:
        short_file = (await upload(http, _tone(work / "short.wav", 1.0)))["id"]
        long_file = (await upload(http, _tone(work / "long.wav", 60.0)))["id"]
        backlog = await _submit(http, short_file, SHORT_CHAIN, short)
    return short_file, long_file, backlog


async def _measure(
    stack: Stack,
    db_url: str,
    files: tuple[str, str, list[str]],
    short: int,
    long: int,
    probe: int,
    beside: Callable[[], None] | None = None,
) -> list[Run]:
    """The batches; `beside` (the bare reference, `_bare_rate`) runs just before the long
    batch and just after it, so that a host whose speed drifts over minutes weighs on both
    alike."""
    short_file, long_file, backlog = files
    db = _db(stack, db_url)
    try:
        drained = _run("drain", await _rows(db, backlog, timeout_s=1800))
        async with httpx.AsyncClient(base_url=stack.url, timeout=120) as http:
            runs = [drained, await _batch(http, db, short_file, SHORT_CHAIN, short, "short")]
            if beside is not None:
                beside()
            runs.append(await _batch(http, db, long_file, LONG_CHAIN, long, "long"))
            if beside is not None:
                beside()
            for gap_s in (PROBE_GAP_S, 0.0):
                probed, client_e2e = await _probe(http, db, stack.url, short_file, probe, gap_s)
                runs.append(probed)
                runs.append(Run("client", client_e2e, probed.dsp, probed.service, 0, 0, 0))
            return runs
    finally:
        await db.close()


def _with_stack(
    pool_size: int,
    work: Path,
    short: int,
    long: int,
    probe: int,
    postgres: str,
    beside: Callable[[], None] | None = None,
) -> list[Run]:
    """Start a stack of `pool_size` actors and measure it (`_measure`, which runs `beside`
    around its long batch)."""
    db_url = ""
    if postgres:
        name = f"ae_bench_{pool_size}"
        asyncio.run(_admin(postgres, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        asyncio.run(_admin(postgres, f'CREATE DATABASE "{name}"'))
        db_url = f"{postgres.rsplit('/', 1)[0]}/{name}"
    stack = Stack(
        work / f"pool{pool_size}" / "data",
        # Not the tests' `e2e-` prefix: a test run's purge of its queues must not hit ours.
        prefix=f"bench-{uuid.uuid4().hex[:8]}",
        extra_env={
            "AUDIO_ENGINE_POOL_SIZE": str(pool_size),
            # --dev puts every job under one owner: let the whole burst queue.
            "AUDIO_ENGINE_MAX_QUEUED_JOBS_PER_OWNER": str(10 * (2 * short + long + probe)),
            "DATABASE_URL": db_url,
            # The service's defaults, not the tests' (cli.stack.Stack).
            "AUDIO_ENGINE_PROGRESS_INTERVAL_S": str(Settings().progress_interval_s),
            "AUDIO_ENGINE_RAY_DASHBOARD": str(Settings().ray_dashboard).lower(),
        },
    )
    api = stack.start("api", "--dev")
    bridge = None
    try:
        api.wait_http(f"{stack.url}/healthz")
        files = asyncio.run(_preload(stack, work, short))
        bridge = stack.start("bridge")
        bridge.wait_log("bridge consuming", timeout=180)
        return asyncio.run(_measure(stack, db_url, files, short, long, probe, beside))
    finally:
        if bridge is not None:
            bridge.stop()
        api.stop()
        stack.delete_broker_objects()
        if postgres:
            asyncio.run(
                _admin(postgres, f'DROP DATABASE IF EXISTS "ae_bench_{pool_size}" WITH (FORCE)')
            )


def _report(pool_size: int, runs: list[Run]) -> None:
    drain, short, long, *probes = runs
    print(f"\npool size {pool_size}")
    print(
        f"  drain {len(drain.e2e):4d} short jobs queued before the bridge started: "
        f"{len(drain.e2e) / drain.drain_s:7.2f} jobs/s sustained (first start to last end), "
        f"overhead (service - dsp) p50 {_pct(drain.overhead(True), 50) * 1e3:5.1f} ms "
        f"p95 {_pct(drain.overhead(True), 95) * 1e3:5.1f} ms"
    )
    for run in (short, long):
        print(
            f"  {run.name:5} {len(run.e2e):4d} jobs: {run.rate:7.2f} jobs/s "
            f"(submitted in {run.submit_s:5.1f} s, run in {run.drain_s:5.1f} s)  "
            f"e2e latency p50 {_pct(run.e2e, 50) * 1e3:8.1f} ms  "
            f"p95 {_pct(run.e2e, 95) * 1e3:8.1f} ms  "
            f"dsp p50 {_pct(run.dsp, 50) * 1e3:7.1f} ms  "
            f"overhead (service - dsp) p50 {_pct(run.overhead(True), 50) * 1e3:6.1f} ms "
            f"p95 {_pct(run.overhead(True), 95) * 1e3:6.1f} ms"
        )
    for gap_s, probe, client in zip((PROBE_GAP_S, 0.0), probes[::2], probes[1::2], strict=True):
        print(
            f"  probe {len(probe.e2e):4d} jobs one at a time, {gap_s * 1e3:2.0f} ms apart: "
            f"e2e p50 {_pct(probe.e2e, 50) * 1e3:6.1f} ms "
            f"p95 {_pct(probe.e2e, 95) * 1e3:6.1f} ms  "
            f"dsp p50 {_pct(probe.dsp, 50) * 1e3:5.1f} ms  "
            f"overhead (e2e - dsp) p50 {_pct(probe.overhead(False), 50) * 1e3:6.1f} ms  "
            f"(service - dsp) p50 {_pct(probe.overhead(True), 50) * 1e3:6.1f} ms"
        )
        print(
            f"        as the client sees it (submitJob sent -> SUCCEEDED event received): "
            f"e2e p50 {_pct(client.e2e, 50) * 1e3:6.1f} ms "
            f"p95 {_pct(client.e2e, 95) * 1e3:6.1f} ms  "
            f"overhead (e2e - dsp) p50 {_pct(client.overhead(False), 50) * 1e3:6.1f} ms "
            f"p95 {_pct(client.overhead(False), 95) * 1e3:6.1f} ms"
        )


def _plot(results: dict[int, list[Run]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for size, runs in results.items():
        axes[0].hist([v * 1e3 for v in runs[1].e2e], bins=40, alpha=0.6, label=f"{size} actor(s)")
        # runs[4]: the probe 50 ms apart, as the client sees it
        axes[1].hist([v * 1e3 for v in runs[4].e2e], bins=30, alpha=0.6, label=f"{size} actor(s)")
    axes[0].set(title="short jobs (burst): end-to-end latency", xlabel="ms", ylabel="jobs")
    axes[1].set(
        title="one job at a time: submitJob sent to SUCCEEDED event", xlabel="ms", ylabel="jobs"
    )
    sizes = list(results)
    x = np.arange(len(sizes))
    drain_rates = [len(results[s][0].e2e) / results[s][0].drain_s for s in sizes]
    short_rates = [results[s][1].rate for s in sizes]
    long_rates = [results[s][2].rate * 60 for s in sizes]
    width = 0.27
    axes[2].bar(x - width, drain_rates, width, label="short jobs/s (backlog)")
    axes[2].bar(x, short_rates, width, label="short jobs/s (live burst)")
    axes[2].bar(x + width, long_rates, width, label="long jobs/min")
    axes[2].set_xticks(x, [f"{s} actor(s)" for s in sizes])
    axes[2].set(title="throughput by pool size")
    for ax in axes:
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"\nwrote {path}")


def _render_long(path: str, taken: Any, jobs: int, ready: Any, go: Any, ends: Any) -> None:
    """In a bare process: warm up, then take long-chain renders of `path` from the shared
    count `taken` until `jobs` are taken; puts the monotonic time it ran out of work in `ends`."""
    from actors.impulses import IRCache
    from actors.runner import process_file
    from dsp.warmup import warmup
    from jobs.effects import parse_chain

    warmup()
    cache = IRCache(2**30)
    cache.preload_presets((RATE,))
    calls = parse_chain(LONG_CHAIN, RATE)
    out = Path(path).with_name(f"bare-{time.time_ns()}.wav")
    process_file(Path(path), out, calls, "WAV", "FLOAT", 65536, cache.for_job({}))  # warm
    ready.release()
    go.wait()
    while True:
        with taken.get_lock():
            if taken.value >= jobs:
                break
            taken.value += 1
        process_file(Path(path), out, calls, "WAV", "FLOAT", 65536, cache.for_job({}))
    ends.put(time.monotonic())
    out.unlink()


def _bare_rate(path: Path, jobs: int, procs: int) -> float:
    """The machine's own ceiling for the long-job rate of `procs` actors: the same DSP in
    `procs` bare processes (no Ray, no broker, no database), `jobs` renders shared out as the
    stack shares its long jobs between actors (each process takes the next when done), timed
    from the start, once every process is warm, to the end of the last: the stack's figure
    counts the same wait for the last job. Returns jobs/s."""
    import multiprocessing

    taken: Any = multiprocessing.Value("i", 0)
    ready: Any = multiprocessing.Semaphore(0)
    go: Any = multiprocessing.Event()
    ends: Any = multiprocessing.Queue()
    workers = [
        multiprocessing.Process(target=_render_long, args=(str(path), taken, jobs, ready, go, ends))
        for _ in range(procs)
    ]
    for w in workers:
        w.start()
    for _ in workers:
        ready.acquire()
    start = time.monotonic()
    go.set()
    last = max(ends.get() for _ in workers)
    for w in workers:
        w.join()
    return jobs / (last - start)


async def _broker_floor(count: int, gap_s: float, job: bool) -> float:
    """p50 ms from publishing a confirmed message to its delivery to a consumer, one message
    every `gap_s`: `job`, persistent on a quorum queue (the outbox relay's); else transient
    on an exclusive classic queue (a job event's way to an API replica)."""
    import aio_pika

    connection = await aio_pika.connect_robust(Settings().rabbitmq_url)
    try:
        publisher = await connection.channel(publisher_confirms=True)
        consumer = await connection.channel()
        if job:
            queue = await consumer.declare_queue(
                f"bench-floor-{time.time_ns()}", durable=True, arguments={"x-queue-type": "quorum"}
            )
        else:
            queue = await consumer.declare_queue(exclusive=True, auto_delete=True)
        mode = aio_pika.DeliveryMode.PERSISTENT if job else aio_pika.DeliveryMode.NOT_PERSISTENT
        arrived: asyncio.Queue[float] = asyncio.Queue()

        async def on_message(message: Any) -> None:
            arrived.put_nowait(time.perf_counter())
            await message.ack()

        tag = await queue.consume(on_message)
        times = []
        for _ in range(count):
            sent = time.perf_counter()
            body = aio_pika.Message(b"x" * 600, delivery_mode=mode)
            await publisher.default_exchange.publish(body, routing_key=queue.name)
            times.append(await arrived.get() - sent)
            await asyncio.sleep(gap_s)
        await queue.cancel(tag)
        await queue.delete(if_unused=False, if_empty=False)
        return statistics.median(times) * 1e3
    finally:
        await connection.close()


def _ray_floor(count: int, gap_s: float) -> float:
    """p50 ms of an awaited call to a trivial threaded Ray actor (as the pool's actors are),
    one call every `gap_s`, on a local Ray of this process."""
    import ray

    ray.init(num_cpus=1, include_dashboard=False, logging_level="ERROR")
    try:

        class Echo:
            def call(self, value: int) -> int:
                return value

        actor: Any = ray.remote(Echo).options(max_concurrency=4).remote()

        async def calls() -> float:
            await actor.call.remote(0)
            times = []
            for i in range(count):
                start = time.perf_counter()
                await actor.call.remote(i)
                times.append(time.perf_counter() - start)
                await asyncio.sleep(gap_s)
            return statistics.median(times) * 1e3

        return asyncio.run(calls())
    finally:
        ray.shutdown()


def _floors(count: int = 100) -> None:
    for gap_s in (PROBE_GAP_S, 0.0):
        job = asyncio.run(_broker_floor(count, gap_s, job=True))
        event = asyncio.run(_broker_floor(count, gap_s, job=False))
        actor = _ray_floor(count, gap_s)
        print(
            f"floors, {gap_s * 1e3:2.0f} ms between round trips, p50: RabbitMQ publish to "
            f"delivery, a job message (quorum, persistent) {job:.2f} ms, an event (transient) "
            f"{event:.2f} ms; a Ray actor call {actor:.2f} ms. A job pays the three: "
            f"{job + event + actor:.1f} ms before any HTTP, GraphQL, database or DSP work"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", type=int, default=500)
    parser.add_argument("--long", type=int, default=20)
    parser.add_argument("--probe", type=int, default=50)
    parser.add_argument("--pools", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--postgres", default="", help="admin URL: use PostgreSQL, not SQLite")
    parser.add_argument("--plot", type=Path, default=PLOT)
    parser.add_argument("--smoke", action="store_true", help="a handful of jobs, 1 actor (CI)")
    args = parser.parse_args()
    if args.smoke:
        args.short, args.long, args.probe, args.pools = 6, 1, 3, [1]
        args.plot = Path(tempfile.mkdtemp(prefix="ae-bench-plot-")) / "throughput.png"
    results: dict[int, list[Run]] = {}
    bare: dict[int, list[float]] = {size: [] for size in args.pools}
    reference = len(args.pools) > 1 and 1 in args.pools
    database = "PostgreSQL" if args.postgres else "SQLite (WAL)"
    print(f"database: {database}")
    with tempfile.TemporaryDirectory(prefix="ae-bench-") as tmp:
        work = Path(tmp)
        for size in args.pools:

            def bare_beside(size: int = size) -> None:
                """The bare reference for this pool, on the long input `_preload` wrote."""
                bare[size].append(_bare_rate(work / "long.wav", args.long, size))

            results[size] = _with_stack(
                size,
                work,
                args.short,
                args.long,
                args.probe,
                args.postgres,
                bare_beside if reference else None,
            )
            _report(size, results[size])
    if reference:
        for size in results:
            if size == 1:
                continue
            drain = (len(results[size][0].e2e) / results[size][0].drain_s) / (
                len(results[1][0].e2e) / results[1][0].drain_s
            )
            short = results[size][1].rate / results[1][1].rate
            long = results[size][2].rate / results[1][2].rate
            print(
                f"\n{size} actors vs 1: backlog x{drain:.2f}, live short burst x{short:.2f}, "
                f"long jobs x{long:.2f}"
            )
        one = statistics.mean(bare[1])
        beside = [
            f"{size} process{'es' if size > 1 else ''} "
            + ", ".join(f"{r:.2f}" for r in rates)
            + f" jobs/s (the stack: {results[size][2].rate / statistics.mean(rates):.2f} of it)"
            for size, rates in bare.items()
        ]
        print(
            "reference: the same long-job DSP in bare processes (no Ray, broker or database), "
            f"{args.long} renders shared out, just before and just after each pool's long batch "
            "(the stack idle beside them): " + "; ".join(beside)
        )
        if 2 in results:
            two = statistics.mean(bare[2])
            long = results[2][2].rate / results[1][2].rate
            print(
                f"long jobs on 2 actors: x{long:.2f}, bare processes x{two / one:.2f}: "
                f"{long / (two / one):.2f} of the bare processes' ratio (target >= 0.9)"
            )
    _floors()
    _plot(results, args.plot, f"audio-engine end to end, {database}, 2-core machine")
    dsp_ms = statistics.median(results[min(results)][3].dsp) * 1e3
    print(f"(median DSP time of a short job inside the actor: {dsp_ms:.1f} ms)")


if __name__ == "__main__":
    main()
