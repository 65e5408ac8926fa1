"""A job's trace context travels with its outbox row and its AMQP headers (real RabbitMQ,
real SQLite and PostgreSQL, the SDK's in-memory exporter): the relay publishes a row in the
span that wrote it, even when it reads the row back from the table (another process, after
a restart), and a consumer extracting the headers continues the same trace."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from job_records import queued_job, stored_file
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from cli.traces import SpanReceiver
from jobs import tracing
from jobs.broker import Broker
from jobs.db import Database
from jobs.outbox import OutboxRelay, pending_outbox
from jobs.settings import Settings
from jobs.store import JobStore


@pytest.fixture
async def broker(settings: Settings) -> AsyncIterator[Broker]:
    broker = await Broker.connect(settings)
    yield broker
    await broker.close()


async def _one_message(broker: Broker, settings: Settings, timeout: float = 10.0) -> Any:
    queue = await broker.channel.get_queue(settings.jobs_queue, ensure=False)
    async with asyncio.timeout(timeout):
        while (message := await queue.get(fail=False, no_ack=True)) is None:
            await asyncio.sleep(0.02)
    return message


def _ids(span: Any) -> tuple[int, int]:
    context = span.get_span_context()
    return context.trace_id, context.span_id


async def test_the_outbox_row_keeps_the_trace_of_the_span_that_wrote_it(
    database: Database, spans: Any
) -> None:
    f = await stored_file(database)
    with tracing.span("submitJob") as submit:
        expected = tracing.traceparent()
        await queued_job(database, f.id)
    [row] = await database.run(pending_outbox)
    assert expected is not None
    assert row.trace == expected
    trace_id, span_id = _ids(submit)
    assert row.trace.startswith(f"00-{trace_id:032x}-{span_id:016x}-")
    # Outside any span nothing is stored.
    await queued_job(database, f.id)
    rows = await database.run(pending_outbox)
    assert [r.trace for r in rows] == [expected, None]


async def test_a_row_read_back_is_published_in_its_trace_and_the_consumer_continues_it(
    database: Database, broker: Broker, settings: Settings, spans: Any
) -> None:
    f = await stored_file(database)
    with tracing.span("submitJob") as submit:
        await queued_job(database, f.id, message=b"traced")
    # A relay that was not handed the row (another process): it reads it back, trace too.
    relay = OutboxRelay(database, broker, poll_s=3600)
    assert await relay.publish_pending() == 1
    message = await _one_message(broker, settings)
    assert message.body == b"traced"
    assert tracing.TRACEPARENT in message.headers

    with tracing.span("bridge job", message.headers, kind=SpanKind.CONSUMER) as consumed:
        pass
    finished = {s.name: s for s in spans.get_finished_spans()}
    publish = finished["outbox publish job"]
    assert publish.kind is SpanKind.PRODUCER
    trace_id, submit_id = _ids(submit)
    assert publish.context.trace_id == trace_id
    assert publish.parent is not None and publish.parent.span_id == submit_id
    # The consumer's span is the publish span's child, in the same trace.
    assert consumed.get_span_context().trace_id == trace_id
    assert finished["bridge job"].parent.span_id == publish.context.span_id


async def test_events_of_a_traced_transition_carry_its_trace(
    database: Database, broker: Broker, settings: Settings, spans: Any
) -> None:
    f = await stored_file(database)
    job = await queued_job(database, f.id)
    store = JobStore(database)
    with tracing.span("bridge job") as bridge:
        await store.start(job.id, "dsp-test")
    rows = await database.run(pending_outbox)
    event_rows = [r for r in rows if r.kind == "event"]
    assert len(event_rows) == 1
    trace_id, span_id = _ids(bridge)
    assert event_rows[0].trace is not None
    assert event_rows[0].trace.startswith(f"00-{trace_id:032x}-{span_id:016x}-")
    # An unsent row's context survives a restart: a new relay publishes it with headers.
    queue = await broker.channel.declare_queue(exclusive=True, auto_delete=True)
    await queue.bind(broker.topology.events)
    relay = OutboxRelay(database, broker, poll_s=3600)
    assert await relay.publish_pending() == 2  # the job message, untraced, and the event
    async with asyncio.timeout(10):
        while (message := await queue.get(fail=False, no_ack=True)) is None:
            await asyncio.sleep(0.02)
    context = tracing.context_of(message.headers)
    assert context is not None
    assert trace.get_current_span(context).get_span_context().trace_id == trace_id


def test_context_of_reads_header_bytes_and_refuses_what_is_not_a_trace() -> None:
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    for carrier in (parent, {"traceparent": parent}, {"traceparent": parent.encode()}):
        context = tracing.context_of(carrier)
        assert context is not None
        found = trace.get_current_span(context).get_span_context()
        assert f"{found.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"
        assert f"{found.span_id:016x}" == "b7ad6b7169203331"
    assert tracing.context_of(None) is None
    assert tracing.context_of({}) is None
    assert tracing.context_of({"traceparent": "not a traceparent"}) is None
    assert tracing.context_of("00-" + "0" * 32 + "-" + "0" * 16 + "-01") is None  # invalid ids


def test_effects_laid_end_to_end_are_children_with_their_durations(spans: Any) -> None:
    with tracing.span("actor run") as run:
        tracing.laid_end_to_end([("effect eq", 0.25), ("effect gain", 0.5)], 1_000_000_000)
    finished = {s.name: s for s in spans.get_finished_spans()}
    eq, gain = finished["effect eq"], finished["effect gain"]
    assert eq.parent is not None and eq.parent.span_id == run.get_span_context().span_id
    assert gain.parent is not None and gain.parent.span_id == run.get_span_context().span_id
    assert (eq.start_time, eq.end_time) == (1_000_000_000, 1_250_000_000)
    assert (gain.start_time, gain.end_time) == (1_250_000_000, 1_750_000_000)
    assert eq.attributes is not None and eq.attributes["timing"] == "summed"


def test_settings_read_the_standard_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "engine")
    settings = Settings()
    assert settings.tracing
    assert settings.otlp_traces_url == "http://collector:4318/v1/traces"
    assert settings.otel_service_name == "engine"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://tempo:4318/otlp/traces")
    assert Settings().otlp_traces_url == "http://tempo:4318/otlp/traces"
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert not Settings().tracing
    monkeypatch.delenv("OTEL_SDK_DISABLED")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert not Settings().tracing


def test_without_an_endpoint_nothing_is_installed_or_carried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert not settings.tracing
    assert tracing.setup(settings, "api") is False


def test_the_receiver_collects_what_the_otlp_exporter_posts() -> None:
    """The OTLP/HTTP exporter `setup` installs, against `cli.traces.SpanReceiver` (which
    the end-to-end test and the trace benchmark read): ids, names and parents survive."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    with SpanReceiver() as receiver:
        provider = TracerProvider(resource=Resource.create({"service.name": "audio-engine-x"}))
        exporter = OTLPSpanExporter(endpoint=f"{receiver.endpoint}/v1/traces")
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("test")
        with tracer.start_as_current_span("outer") as outer, tracer.start_as_current_span("inner"):
            pass
        provider.shutdown()
        got = {s.name: s for s in receiver.wait_for(lambda s: len(s) >= 2, 10)}
    context = outer.get_span_context()
    assert got["outer"].trace_id == got["inner"].trace_id == f"{context.trace_id:032x}"
    assert got["inner"].parent_id == got["outer"].span_id == f"{context.span_id:016x}"
    assert got["outer"].parent_id is None
    assert got["inner"].service == "audio-engine-x"
    assert got["outer"].end_ns >= got["inner"].end_ns >= got["inner"].start_ns > 0
