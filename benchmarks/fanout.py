"""Fan-out of job events to `myJobUpdates` subscribers: open subscriptions must not slow the
jobs down. Real processes (`audio-engine api`, `audio-engine bridge`), one owner's API key
(not an admin: its subscriptions are routed by the owner each event carries).

    .venv/bin/python -m benchmarks.fanout [--jobs 100] [--subscribers 1 300] [--hold 1000]

For each count in `--subscribers`: open that many subscriptions (one websocket each), wait
until every one hears a warm-up job end (so all are registered), then submit `--jobs` short
jobs at once and time from the first submit until every subscriber has heard every job's
SUCCEEDED event. Prints the times and the ratio of the largest count to the smallest (the
target: at most 2x). Then `--hold` subscriptions stay open through another batch: every one
must hear every job, with no error. Each round also prints the CPU seconds the API process
and the subscribers (this process) spent in it: on a shared machine wall times stretch, CPU
times much less. Needs RabbitMQ on 127.0.0.1:5672; SQLite in a temporary folder. A quick
check: `--smoke` (3 jobs, 1 and 5 subscribers, 10 held).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import soundfile as sf
import websockets
from websockets.typing import Subprotocol

from cli.client import SUBMIT, graphql, upload
from cli.stack import Stack

MINE = "subscription { myJobUpdates { jobId status } }"
SHORT_CHAIN: list[dict[str, Any]] = [{"gain": {"db": -1.0}}]
CLIENTS = 8


class Subscriber:
    """One `myJobUpdates` subscription on its own websocket; notes when each job's
    SUCCEEDED event arrived."""

    def __init__(self, url: str, key: str) -> None:
        self.url = url.replace("http", "ws", 1).rstrip("/") + "/graphql"
        self.key = key
        self.succeeded: dict[str, float] = {}
        self.errors: list[str] = []
        self.changed = asyncio.Event()

    async def run(self, opened: asyncio.Semaphore) -> None:
        try:
            async with opened:
                ws = await websockets.connect(
                    self.url, subprotocols=[Subprotocol("graphql-transport-ws")], max_queue=None
                )
            async with ws:
                init = {
                    "type": "connection_init",
                    "payload": {"Authorization": f"Bearer {self.key}"},
                }
                await ws.send(json.dumps(init))
                if json.loads(await ws.recv())["type"] != "connection_ack":
                    raise RuntimeError("no connection_ack")
                payload = {"query": MINE}
                await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
                async for raw in ws:
                    if "SUCCEEDED" not in str(raw) and "error" not in str(raw):
                        continue  # RUNNING and progress: not what is timed, not parsed
                    message = json.loads(raw)
                    if message["type"] != "next" or message["payload"].get("errors"):
                        self.errors.append(str(message)[:300])
                        continue
                    event = message["payload"]["data"]["myJobUpdates"]
                    if event["status"] == "SUCCEEDED":
                        self.succeeded.setdefault(event["jobId"], time.perf_counter())
                        self.changed.set()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.errors.append(repr(exc))
            self.changed.set()

    async def heard(self, ids: list[str], timeout_s: float) -> float:
        """When the last of `ids` arrived (perf_counter)."""
        async with asyncio.timeout(timeout_s):
            while not all(i in self.succeeded for i in ids):
                if self.errors:
                    raise RuntimeError(f"subscriber failed: {self.errors[0]}")
                self.changed.clear()
                await self.changed.wait()
        return max(self.succeeded[i] for i in ids)


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) process `pid` has used so far."""
    if pid == os.getpid():
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _tone(path: Path) -> Path:
    rng = np.random.default_rng(3)
    sf.write(str(path), (0.1 * rng.standard_normal((48_000, 2))).astype(np.float32), 48_000)
    return path


async def _submit(http: httpx.AsyncClient, file_id: str, count: int) -> list[str]:
    ids: list[str] = []

    async def client(n: int) -> None:
        for _ in range(n):
            data = await graphql(
                http, SUBMIT, {"input": {"fileId": file_id, "effects": SHORT_CHAIN}}
            )
            ids.append(data["submitJob"]["id"])

    shares = [count // CLIENTS + (1 if i < count % CLIENTS else 0) for i in range(CLIENTS)]
    await asyncio.gather(*(client(n) for n in shares if n))
    return ids


async def _round(
    stack: Stack, api_pid: int, key: str, file_id: str, subscribers: int, jobs: int
) -> tuple[float, float, float, int]:
    """Seconds from the first submit until all `subscribers` heard all `jobs`, the API's
    and this process's (the subscribers') CPU seconds meanwhile, and the errors the
    subscribers saw."""
    subs = [Subscriber(stack.url, key) for _ in range(subscribers)]
    opened = asyncio.Semaphore(50)  # open the websockets 50 at a time
    tasks = [asyncio.create_task(s.run(opened)) for s in subs]
    headers = {"Authorization": f"Bearer {key}"}
    try:
        async with httpx.AsyncClient(base_url=stack.url, timeout=120, headers=headers) as http:
            # Warm-up jobs until every subscriber heard one: then all are registered (a
            # subscription opened after a job ended never hears it).
            async with asyncio.timeout(300):
                while not all(s.succeeded or s.errors for s in subs):
                    await _submit(http, file_id, 1)
                    await asyncio.sleep(1.0)
            if failed := [s.errors[0] for s in subs if s.errors]:
                raise RuntimeError(f"{len(failed)} subscribers failed: {failed[0]}")
            cpu, own, start = _cpu_s(api_pid), _cpu_s(os.getpid()), time.perf_counter()
            ids = await _submit(http, file_id, jobs)
            ends = await asyncio.gather(*(s.heard(ids, 600) for s in subs))
            cpu, own = _cpu_s(api_pid) - cpu, _cpu_s(os.getpid()) - own
        return max(ends) - start, cpu, own, sum(len(s.errors) for s in subs)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--subscribers", type=int, nargs="+", default=[1, 300])
    parser.add_argument("--hold", type=int, default=1000)
    parser.add_argument("--smoke", action="store_true", help="3 jobs, 1 vs 5, hold 10 (CI)")
    args = parser.parse_args()
    if args.smoke:
        args.jobs, args.subscribers, args.hold = 3, [1, 5], 10
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # One socket per subscription on each side; the API process inherits the limit.
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4 * args.hold + 1024)), hard))

    with tempfile.TemporaryDirectory(prefix="fanout-") as tmp:
        work = Path(tmp)
        stack = Stack(
            work / "data",
            # Not the tests' `e2e-` prefix: a test run's purge of its queues must not hit ours.
            prefix=f"bench-{uuid.uuid4().hex[:8]}",
            extra_env={
                "AUDIO_ENGINE_MAX_QUEUED_JOBS_PER_OWNER": str(10 * (args.jobs + 10)),
                # Every subscriber comes from this one address, as behind a reverse proxy.
                "AUDIO_ENGINE_MAX_CONNECTIONS_PER_CLIENT": "0",
            },
        )
        key = stack.create_key("fanout", admin=False)
        api = stack.start("api")
        bridge = None
        try:
            api.wait_http(f"{stack.url}/healthz")
            bridge = stack.start("bridge")
            bridge.wait_log("bridge consuming", timeout=180)

            async def run() -> None:
                headers = {"Authorization": f"Bearer {key}"}
                async with httpx.AsyncClient(base_url=stack.url, timeout=120, headers=headers) as h:
                    file_id = str((await upload(h, _tone(work / "short.wav")))["id"])
                took: dict[int, float] = {}
                pid = api.proc.pid
                for count in args.subscribers:
                    took[count], cpu, own, errors = await _round(
                        stack, pid, key, file_id, count, args.jobs
                    )
                    print(
                        f"{args.jobs} jobs, {count} subscribers: all SUCCEEDED events heard "
                        f"in {took[count]:.2f} s; CPU: API {cpu:.2f} s, subscribers {own:.2f} s "
                        f"({errors} errors)",
                        flush=True,
                    )
                low, high = min(took), max(took)
                if low != high:
                    ratio = took[high] / took[low]
                    verdict = "met" if ratio <= 2.0 else "MISSED"
                    print(f"{high} vs {low} subscribers: x{ratio:.2f} (target <= 2: {verdict})")
                held, cpu, own, errors = await _round(
                    stack, pid, key, file_id, args.hold, args.jobs
                )
                print(
                    f"{args.hold} subscribers held: every one heard all {args.jobs} jobs in "
                    f"{held:.2f} s; CPU: API {cpu:.2f} s, subscribers {own:.2f} s; {errors} errors"
                )

            asyncio.run(run())
        finally:
            if bridge is not None:
                bridge.stop()
            api.stop()
            stack.delete_broker_objects()


if __name__ == "__main__":
    main()
