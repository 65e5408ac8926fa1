"""One trace per job: OpenTelemetry spans from the API to the actor and back.

A job's trace starts with the API's `submitJob` span. Its W3C `traceparent` is stored with
the job's outbox row (`jobs.outbox`), so whichever relay publishes the row, now or after a
restart, publishes it under that trace, with the `traceparent` in the AMQP message headers.
The bridge continues the trace from the headers (`bridge job`), hands it to the Ray actor
as an argument (`actor run`, and one span per effect), and the events the job's changes
write carry it too: the API's relay of an event to its subscribers (`event relay`) closes
the trace.

Each process (API, bridge, actor) calls `setup` once. Without an exporter configured
(`Settings.tracing`: no OTLP endpoint, `OTEL_TRACES_EXPORTER=none`, `OTEL_SDK_DISABLED`)
no SDK provider is installed: the API's no-op tracer makes invalid spans, no `traceparent`
is stored or sent, and a job pays a few microseconds. With one, spans are batched
(`BatchSpanProcessor`, tuned by the SDK's own `OTEL_BSP_*` variables) and posted by OTLP/HTTP.

Only the `traceparent` (and `tracestate`) header is carried: `TraceContextTextMapPropagator`
injects and extracts it, nothing here parses it.

>>> setup(settings, "bridge")                                    # doctest: +SKIP
>>> with span("bridge job", parent=message.headers) as current:  # doctest: +SKIP
...     trace = traceparent()          # hand it to the next hop
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from jobs.settings import Settings

log = logging.getLogger(__name__)

TRACER = "audio_engine"
TRACEPARENT = "traceparent"

_propagator = TraceContextTextMapPropagator()
_tracer = trace.get_tracer(TRACER)  # a proxy until a provider is installed, then that one's
_lock = threading.Lock()
_installed: str | None = None
_provider_seen = False

Carrier = Mapping[str, Any] | str | None
"""Where a parent context comes from: message headers, a `traceparent` string, or nothing."""


def setup(settings: Settings, role: str) -> bool:
    """Install this process's tracer provider, once, as `settings` say (see the module
    docstring); `role` (api, bridge, actor) ends the service name. Returns whether spans are
    exported. A provider installed before (a test's in-memory one) is kept."""
    global _installed
    if not settings.tracing:
        return False
    with _lock:
        if _installed is not None:
            return True
        if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            _installed = "existing"
            return True
        # Imported here: a process that exports nothing never loads the SDK.
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            ConsoleSpanExporter,
            SpanExporter,
        )

        resource = Resource.create({SERVICE_NAME: f"{settings.otel_service_name}-{role}"})
        provider = TracerProvider(resource=resource)
        exporter: SpanExporter
        if settings.otel_traces_exporter.strip().lower() == "console":
            exporter = ConsoleSpanExporter()
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter(endpoint=settings.otlp_traces_url)
        provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        _installed = role
        log.info("tracing: %s spans to %s", role, settings.otlp_traces_url or "the console")
        return True


def _recording_provider() -> bool:
    """Whether a real (SDK) provider is installed: this process's or a test's (OpenTelemetry
    takes one per process, for good: once seen, it is remembered)."""
    global _provider_seen
    if not _provider_seen:
        provider = trace.get_tracer_provider()
        _provider_seen = not isinstance(
            provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
        )
    return _provider_seen


def context_of(carrier: Carrier) -> otel_context.Context | None:
    """The context `carrier` holds (None when it holds none)."""
    if carrier is None:
        return None
    if isinstance(carrier, str):
        carrier = {TRACEPARENT: carrier}
    elif TRACEPARENT not in carrier:
        return None
    found = _propagator.extract(carrier, getter=_getter)
    if not trace.get_current_span(found).get_span_context().is_valid:
        return None
    return found


@contextmanager
def span(
    name: str,
    parent: Carrier = None,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, AttributeValue] | None = None,
    start_time: int | None = None,
) -> Iterator[Span]:
    """A current span named `name`, child of `parent` when it holds a context, else of the
    current span (or a new trace's root).

    With no SDK provider and no parent the current context is left alone (a no-op span
    costs a context switch for nothing); a parent's context is still made current, so a
    process that exports nothing passes its caller's trace on."""
    context = context_of(parent)
    if context is None and not _recording_provider():
        yield trace.INVALID_SPAN
        return
    with _tracer.start_as_current_span(
        name, context=context, kind=kind, attributes=attributes, start_time=start_time
    ) as current:
        yield current


def traceparent() -> str | None:
    """The current span's `traceparent` (None outside a recorded span)."""
    if not trace.get_current_span().get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get(TRACEPARENT)


def headers(trace_parent: str | None = None) -> dict[str, str]:
    """Message headers carrying `trace_parent`, or the current span's context ({} for
    none)."""
    if trace_parent is not None:
        return {TRACEPARENT: trace_parent}
    if not trace.get_current_span().get_span_context().is_valid:
        return {}
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier


def recording() -> bool:
    """Whether the current span is recorded (worth measuring things for)."""
    return trace.get_current_span().is_recording()


def laid_end_to_end(timed: Sequence[tuple[str, float]], start_ns: int) -> None:
    """Child spans of the current one for work that was interleaved, not contiguous (an
    effect's time is spread over every block of a render): each `(name, seconds)` becomes a
    span that long, the first starting at `start_ns`, each next one where the previous
    ended. Their lengths are true, their places are not; attribute `timing` says so."""
    at = start_ns
    for name, seconds in timed:
        end = at + round(seconds * 1e9)
        piece = _tracer.start_span(name, start_time=at, attributes={"timing": "summed"})
        piece.end(end_time=end)
        at = end


class _Getter:
    """Reads AMQP headers, whose string values may arrive as bytes."""

    def get(self, carrier: Mapping[str, Any], key: str) -> list[str] | None:
        value = carrier.get(key)
        if value is None:
            return None
        if isinstance(value, bytes):
            value = value.decode("ascii", "replace")
        return [str(value)]

    def keys(self, carrier: Mapping[str, Any]) -> list[str]:
        return list(carrier)


_getter: Any = _Getter()
