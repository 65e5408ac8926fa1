"""Where one job's time goes, read from its trace: the whole stack (`audio-engine api --dev`
and `audio-engine bridge`, real processes, Ray actors) exports its spans by OTLP/HTTP to an
in-process receiver (`cli.traces`), and each hop's p50 is read from the spans.

    .venv/bin/python -m benchmarks.traces [--jobs 40] [--seconds 1] [--smoke]

Jobs run one at a time, `GAP_S` apart (an isolated job: every process idle when it comes),
each a `--seconds` stereo 48 kHz tone through gain + EQ, as the throughput benchmark's probes;
the client waits for each job's SUCCEEDED event on a `myJobUpdates` subscription opened once.
Two tables: every span name's p50 and p90 duration, then the hops between them (from one
span's start or end to the next one's: RabbitMQ's delivery, the Ray call's way there and
back, which no span covers; a consumer may start before its publisher's confirm arrives,
so deliveries are counted from the publish's start). Processes share this machine's clock,
so a gap between spans of two processes is as exact as the spans.

Also printed: what the tracing calls a job makes cost in this process with no endpoint (the
API's no-op tracer: the default) and recording (the SDK with a batch processor), per job.
Needs RabbitMQ on 127.0.0.1:5672.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import soundfile as sf
import websockets
from websockets.typing import Subprotocol

from cli.client import SUBMIT, graphql, upload
from cli.stack import Stack
from cli.traces import ReceivedSpan, SpanReceiver
from jobs.settings import Settings

RATE = 48_000
CHAIN = [
    {"gain": {"db": -3.0}},
    {"eq": {"bands": [{"kind": "PEAK", "frequency": 1000.0, "q": 1.0, "gainDb": 4.0}]}},
]
GAP_S = 0.05
EVENTS = "subscription { myJobUpdates { jobId status } }"
# The hops of one job, in order: (label, from (span, edge), to (span, edge)).
HOPS = [
    ("API: submitJob resolver", ("submitJob", "start"), ("submitJob", "end")),
    ("commit to relay publish", ("submitJob", "end"), ("outbox publish job", "start")),
    (
        "RabbitMQ: confirm of the job",
        ("outbox publish job", "start"),
        ("outbox publish job", "end"),
    ),
    ("RabbitMQ: publish to bridge", ("outbox publish job", "start"), ("bridge job", "start")),
    ("bridge to actor method", ("bridge job", "start"), ("actor run", "start")),
    ("actor run", ("actor run", "start"), ("actor run", "end")),
    ("actor return to event publish", ("actor run", "end"), ("event publish", "start")),
    ("RabbitMQ: confirm of the event", ("event publish", "start"), ("event publish", "end")),
    ("RabbitMQ: event to API relay", ("event publish", "start"), ("event relay", "start")),
    ("submit to subscriber (whole)", ("submitJob", "start"), ("event relay", "end")),
]


def _tone(path: Path, seconds: float) -> Path:
    rng = np.random.default_rng(1)
    t = np.arange(int(seconds * RATE)) / RATE
    audio = 0.3 * np.sin(2 * np.pi * 440 * t)[:, None] + 0.05 * rng.standard_normal((t.size, 2))
    sf.write(str(path), audio.astype(np.float32), RATE, subtype="FLOAT")
    return path


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _run_jobs(stack: Stack, work: Path, jobs: int, seconds: float) -> list[str]:
    """Submit `jobs` jobs one at a time; each ends (SUCCEEDED, as its subscriber hears) before
    the next goes. Returns their ids."""
    url = stack.url.replace("http", "ws", 1) + "/graphql"
    ids: list[str] = []
    async with httpx.AsyncClient(base_url=stack.url, timeout=120) as http:
        file_id = (await upload(http, _tone(work / "tone.wav", seconds)))["id"]
        protocols = [Subprotocol("graphql-transport-ws")]
        async with websockets.connect(url, subprotocols=protocols) as ws:
            await ws.send(json.dumps({"type": "connection_init"}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            payload = {"query": EVENTS}
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
            for _ in range(jobs):
                data = await graphql(http, SUBMIT, {"input": {"fileId": file_id, "effects": CHAIN}})
                job_id = data["submitJob"]["id"]
                while True:
                    message = json.loads(await asyncio.wait_for(ws.recv(), 120))
                    event = message["payload"]["data"]["myJobUpdates"]
                    if event["jobId"] == job_id and event["status"] in ("FAILED", "CANCELLED"):
                        raise RuntimeError(f"job {job_id} ended {event['status']}")
                    if event["jobId"] == job_id and event["status"] == "SUCCEEDED":
                        break
                ids.append(job_id)
                await asyncio.sleep(GAP_S)
    return ids


def _job_traces(spans: list[ReceivedSpan], ids: list[str]) -> dict[str, list[ReceivedSpan]]:
    """Each job's spans: those of the trace its `submitJob` span started."""
    traces = {
        s.trace_id: str(s.attributes.get("job.id"))
        for s in spans
        if s.name == "submitJob" and s.attributes.get("job.id") in ids
    }
    by_job: dict[str, list[ReceivedSpan]] = defaultdict(list)
    for s in spans:
        if s.trace_id in traces:
            by_job[traces[s.trace_id]].append(s)
    return by_job


def _complete(spans: list[ReceivedSpan]) -> bool:
    """Whether a job's trace holds every hop up to the subscriber's SUCCEEDED event."""
    names = {s.name for s in spans}
    done = any(
        s.name == "event relay" and s.attributes.get("job.status") == "SUCCEEDED" for s in spans
    )
    return done and {"submitJob", "outbox publish job", "bridge job", "actor run"} <= names


def _edges(spans: list[ReceivedSpan]) -> dict[str, ReceivedSpan]:
    """One span per hop name; `event publish` is the publish of the SUCCEEDED event, the
    parent of the API relay's span of it."""
    by_id = {s.span_id: s for s in spans}
    found: dict[str, ReceivedSpan] = {}
    for s in spans:
        if s.name == "event relay" and s.attributes.get("job.status") == "SUCCEEDED":
            found["event relay"] = s
            if s.parent_id in by_id:
                found["event publish"] = by_id[s.parent_id]
        elif s.name in ("submitJob", "outbox publish job", "bridge job", "actor run"):
            found.setdefault(s.name, s)
    return found


def _report(by_job: dict[str, list[ReceivedSpan]]) -> None:
    durations: dict[tuple[str, str], list[float]] = defaultdict(list)
    counts: dict[tuple[str, str], int] = defaultdict(int)
    hops: dict[str, list[float]] = defaultdict(list)
    for spans in by_job.values():
        for s in spans:
            key = (s.name, s.service)
            durations[key].append(s.seconds * 1e3)
            counts[key] += 1
        edges = _edges(spans)
        for label, (a, a_edge), (b, b_edge) in HOPS:
            if a in edges and b in edges:
                start = edges[a].start_ns if a_edge == "start" else edges[a].end_ns
                end = edges[b].start_ns if b_edge == "start" else edges[b].end_ns
                hops[label].append((end - start) / 1e6)
    jobs = len(by_job)
    print(f"\nspans of {jobs} jobs (ms)")
    print(f"{'span':<26} {'service':<22} {'per job':>7} {'p50':>8} {'p90':>8}")
    order = sorted(durations, key=lambda k: min(_first(by_job, k[0])))
    for name, service in order:
        values = durations[(name, service)]
        print(
            f"{name:<26} {service:<22} {counts[(name, service)] / jobs:>7.1f} "
            f"{statistics.median(values):>8.2f} {_pct(values, 0.9):>8.2f}"
        )
    print(f"\nwhere the time goes, per hop (ms, {jobs} jobs)")
    print(f"{'hop':<32} {'p50':>8} {'p90':>8}")
    for label, *_ in HOPS:
        if hops[label]:
            values = hops[label]
            print(f"{label:<32} {statistics.median(values):>8.2f} {_pct(values, 0.9):>8.2f}")


def _first(by_job: dict[str, list[ReceivedSpan]], name: str) -> list[int]:
    """Where a span name starts within its job, for ordering the table (ns from submit)."""
    offsets = []
    for spans in by_job.values():
        zero = min(s.start_ns for s in spans)
        offsets += [s.start_ns - zero for s in spans if s.name == name]
    return offsets or [0]


def _per_job_cost(jobs: int = 2000) -> float:
    """Microseconds per job of the tracing calls one job makes across the API, relay and
    bridge (spans, `traceparent` for the outbox row, headers inject and extract), with this
    process's tracer provider as it stands."""
    from jobs import tracing

    start = time.perf_counter()
    for _ in range(jobs):
        with tracing.span("submitJob"):
            row = tracing.traceparent()
        with tracing.span("outbox publish job", row):
            headers = tracing.headers()
        with tracing.span("bridge job", headers):
            actor = tracing.traceparent()
            for _event in range(2):
                tracing.traceparent()
                tracing.headers()
        with tracing.span("actor run", actor):
            if tracing.recording():
                tracing.laid_end_to_end([("effect gain", 0.001), ("effect eq", 0.001)], 0)
        for _event in range(2):
            with tracing.span("event relay", headers):
                pass
    return (time.perf_counter() - start) / jobs * 1e6


def _tracing_costs() -> tuple[float, float]:
    """`_per_job_cost` with no provider (the API's no-op tracer: no endpoint, the default),
    then with the SDK recording into a batch processor whose exporter drops the spans."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Dropping(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    off = _per_job_cost()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Dropping()))
    trace.set_tracer_provider(provider)
    try:
        return off, _per_job_cost()
    finally:
        provider.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=40, help="isolated jobs, one at a time")
    parser.add_argument("--seconds", type=float, default=1.0, help="length of the input tone")
    parser.add_argument("--pool-size", type=int, default=1, help="actors")
    parser.add_argument("--smoke", action="store_true", help="3 jobs of 0.5 s (CI)")
    args = parser.parse_args()
    if args.smoke:
        args.jobs, args.seconds = 3, 0.5
    print(
        f"{args.jobs} isolated jobs of {args.seconds} s stereo, gain + EQ, {args.pool_size} actor"
    )
    with SpanReceiver() as receiver, tempfile.TemporaryDirectory(prefix="ae-traces-") as tmp:
        stack = Stack(
            Path(tmp) / "data",
            prefix=f"bench-{uuid.uuid4().hex[:8]}",
            extra_env={
                "AUDIO_ENGINE_POOL_SIZE": str(args.pool_size),
                "AUDIO_ENGINE_PROGRESS_INTERVAL_S": str(Settings().progress_interval_s),
                "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                "OTEL_BSP_SCHEDULE_DELAY": "500",
            },
        )
        api = stack.start("api", "--dev")
        bridge = None
        try:
            api.wait_http(f"{stack.url}/healthz")
            bridge = stack.start("bridge")
            bridge.wait_log("bridge consuming", timeout=300)
            ids = asyncio.run(_run_jobs(stack, Path(tmp), args.jobs, args.seconds))
            spans = receiver.wait_for(
                lambda got: (
                    len(_job_traces(got, ids)) == len(ids)
                    and all(_complete(s) for s in _job_traces(got, ids).values())
                ),
                timeout_s=120,
            )
        finally:
            if bridge is not None:
                bridge.stop()
            api.stop()
            stack.delete_broker_objects()
    _report(_job_traces(spans, ids))
    off, on = _tracing_costs()
    print("\ntracing calls per job, in one process (microseconds)")
    print(f"no endpoint (no-op tracer, the default): {off:8.1f}")
    print(f"recording (SDK, batch export):           {on:8.1f}")


if __name__ == "__main__":
    main()
