"""One trace per job, end to end: the API (in-process, SDK in-memory exporter), RabbitMQ, a
bridge, a real Ray actor in its own process (exporting by OTLP/HTTP to `cli.traces`'s
receiver, as it would to Jaeger) and the event back to a subscriber. Every hop's span is
there, and all of them share the submit span's trace id."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_client import gql, uploaded

from bridge.service import Bridge
from cli.traces import SpanReceiver
from graph_api.runtime import Runtime
from jobs.settings import Settings
from jobs.states import JobStatus
from tests.conftest import sine, write_wav

SUBMIT = "mutation($input: JobInput!) { submitJob(input: $input) { id } }"
EFFECTS = [{"gain": {"db": -3.0}}, {"delay": {"timeMs": 20.0}}, {"fade": {"inMs": 10.0}}]


@pytest.fixture
def receiver() -> Iterator[SpanReceiver]:
    with SpanReceiver() as receiver:
        yield receiver


@pytest.fixture
def settings(
    settings: Settings, receiver: SpanReceiver, spans: Any, request: pytest.FixtureRequest
) -> Settings:
    """Exporting to the receiver: the actors (other processes) set up their provider from
    these; this process keeps the in-memory one `spans` installed first. A test may add
    settings of its own (indirect parametrization)."""
    update = {"otel_exporter_otlp_endpoint": receiver.endpoint, **getattr(request, "param", {})}
    return settings.model_copy(update=update)


async def _succeeded(
    client: httpx.AsyncClient, runtime: Runtime, file_id: str, effects: list[Any]
) -> str:
    """Submit a job of `effects` on the file and wait for it to succeed; its id."""
    with runtime.events.subscribe_all() as events:
        body = await gql(client, SUBMIT, {"input": {"fileId": file_id, "effects": effects}})
        assert "errors" not in body, body
        job_id: str = body["data"]["submitJob"]["id"]
        async with asyncio.timeout(120):
            while (event := await events.get()).job_id != job_id or not event.status.terminal:
                pass
    assert event.status is JobStatus.SUCCEEDED, event
    return job_id


async def _finished(spans: Any, match: Callable[[Any], bool]) -> Any:
    """The first span of this process's exporter that `match`es, once it has ended."""
    async with asyncio.timeout(30):
        while not (found := [s for s in spans.get_finished_spans() if match(s)]):
            await asyncio.sleep(0.05)
    return found[0]


async def test_one_job_is_one_trace_across_every_hop(
    spans: Any,
    receiver: SpanReceiver,
    client: httpx.AsyncClient,
    runtime: Runtime,
    bridge: Bridge,
    tmp_path: Path,
) -> None:
    file = await uploaded(client, write_wav(tmp_path / "tone.wav", sine(440.0, 1.0)))
    job_id = await _succeeded(client, runtime, file["id"], EFFECTS)

    # The subscriber got its event inside the API's relay span; the bridge's spans ended
    # before its relay published that event.
    await _finished(
        spans, lambda s: s.name == "event relay" and s.attributes.get("job.status") == "SUCCEEDED"
    )
    here = list(spans.get_finished_spans())
    submit = next(s for s in here if s.name == "submitJob" and s.attributes["job.id"] == job_id)
    trace_id = f"{submit.context.trace_id:032x}"
    in_trace = [s for s in here if f"{s.context.trace_id:032x}" == trace_id]
    names = {s.name for s in in_trace}
    assert {"submitJob", "outbox publish job", "bridge job", "outbox publish event"} <= names
    assert "event relay" in names

    # The actor's spans come from its own process, through OTLP/HTTP.
    effect_names = {f"effect {next(iter(e))}" for e in EFFECTS}
    actor = receiver.wait_for(
        lambda got: effect_names | {"actor run"} <= {s.name for s in got if s.trace_id == trace_id},
        timeout_s=60,
    )
    actor_spans = {s.name: s for s in actor if s.trace_id == trace_id}
    assert actor_spans["actor run"].service == "audio-engine-actor"
    assert actor_spans["actor run"].attributes["job.id"] == job_id

    by_id = {f"{s.context.span_id:016x}": s for s in in_trace}
    bridge_job = next(s for s in in_trace if s.name == "bridge job")
    publish_job = next(s for s in in_trace if s.name == "outbox publish job")
    # The hops nest: submit -> publish -> bridge job -> actor run -> each effect.
    assert publish_job.parent is not None and publish_job.parent.span_id == submit.context.span_id
    assert bridge_job.parent is not None
    assert bridge_job.parent.span_id == publish_job.context.span_id
    assert by_id[actor_spans["actor run"].parent_id or ""] is bridge_job
    run_id = actor_spans["actor run"].span_id
    for name in effect_names:
        assert actor_spans[name].parent_id == run_id
    # The event the subscriber got was published from the bridge's span, in the same trace.
    relayed = [
        s
        for s in in_trace
        if s.name == "event relay" and s.attributes.get("job.status") == "SUCCEEDED"
    ]
    assert len(relayed) == 1
    parent = relayed[0].parent
    assert parent is not None
    assert by_id[f"{parent.span_id:016x}"].name == "outbox publish event"


@pytest.mark.parametrize("settings", [{"segment_seconds": 1.0}], indirect=True)
async def test_a_split_job_traces_each_part_and_its_effects(
    spans: Any,
    receiver: SpanReceiver,
    client: httpx.AsyncClient,
    runtime: Runtime,
    bridge: Bridge,
    tmp_path: Path,
) -> None:
    """A job cut into segments: the actor's span of every part and of the stitch are the
    bridge's `pool parts` span's children, and each part has its effects' spans."""
    file = await uploaded(client, write_wav(tmp_path / "long.wav", sine(440.0, 3.5)))
    effects = [{"gain": {"db": -3.0}}, {"eq": {"bands": [{"kind": "PEAK", "frequency": 500}]}}]
    await _succeeded(client, runtime, file["id"], effects)
    pool_parts = await _finished(spans, lambda s: s.name == "pool parts")
    trace_id = f"{pool_parts.context.trace_id:032x}"
    parts = pool_parts.attributes["parts"]
    assert parts >= 3

    def complete(got: list[Any]) -> bool:
        mine = [s for s in got if s.trace_id == trace_id]
        return sum(s.name == "actor render part" for s in mine) == parts and any(
            s.name == "actor stitch" for s in mine
        )

    actor = [s for s in receiver.wait_for(complete, timeout_s=60) if s.trace_id == trace_id]
    pool_id = f"{pool_parts.context.span_id:016x}"
    rendered = [s for s in actor if s.name == "actor render part"]
    assert sorted(s.attributes["part"] for s in rendered) == list(range(parts))
    assert all(s.parent_id == pool_id for s in rendered)
    assert next(s for s in actor if s.name == "actor stitch").parent_id == pool_id
    for part in rendered:
        children = {s.name for s in actor if s.parent_id == part.span_id}
        assert children == {"effect gain", "effect eq"}
