"""Prometheus metrics at `/metrics`, one registry per app.

- `audio_engine_jobs{status}`: jobs by status, counted in the database at scrape time (so
  every replica reports the same totals: aggregate with `max`, not `sum`).
- `audio_engine_jobs_queue_depth`: messages ready in `<prefix>.jobs` (a passive declare at
  scrape time; NaN while RabbitMQ is unreachable).
- `audio_engine_job_duration_seconds{status}`: RUNNING to SUCCEEDED or FAILED, from the
  events this process relays. Every replica sees every event, so
  each replica's histogram covers all jobs: again aggregate with `max`.
- `audio_engine_http_request_duration_seconds{method,route,status}`: by route template
  (`/files/{file_id}`), never the raw path, so ids do not explode the label set.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from datetime import datetime

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, Histogram
from prometheus_client.exposition import generate_latest
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from graph_api.auth import Principal
from graph_api.context import get_principal, get_runtime
from graph_api.runtime import Runtime
from jobs.contract import JobEvent
from jobs.db import repository as repo
from jobs.errors import NotFound
from jobs.states import JobStatus

log = logging.getLogger(__name__)

JOB_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, float("inf"))
_SEEN = 4096  # job ids remembered, so a redelivered terminal event is counted once


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.jobs = Gauge(
            "audio_engine_jobs", "Jobs by status.", ["status"], registry=self.registry
        )
        self.queue_depth = Gauge(
            "audio_engine_jobs_queue_depth",
            "Messages ready in the jobs queue.",
            registry=self.registry,
        )
        self.job_duration = Histogram(
            "audio_engine_job_duration_seconds",
            "Wall-clock time from RUNNING to SUCCEEDED or FAILED.",
            ["status"],
            buckets=JOB_BUCKETS,
            registry=self.registry,
        )
        self.http_latency = Histogram(
            "audio_engine_http_request_duration_seconds",
            "HTTP request latency by route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._running: OrderedDict[str, datetime] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()

    async def render(self, runtime: Runtime) -> tuple[bytes, str]:
        """Refresh the scrape-time gauges, then the exposition text and its content type."""
        async with runtime.db.transaction() as session:
            counts = await repo.count_jobs_by_status(session)
        for status, count in counts.items():
            self.jobs.labels(status=status.value).set(count)
        self.queue_depth.set(await _queue_depth(runtime))
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def watch(self, runtime: Runtime) -> None:
        """Observe job durations from the events `runtime` relays: the time between a job's
        first RUNNING event and its terminal one, both stamped by the bridge. A replica that
        started while a job ran has not seen its RUNNING event and reads the row instead."""

        def on_event(event: JobEvent) -> None:
            if event.status is JobStatus.RUNNING:
                if event.job_id not in self._running:
                    self._running[event.job_id] = event.at
                    if len(self._running) > _SEEN:
                        self._running.popitem(last=False)
                return
            started = self._running.pop(event.job_id, None)
            if event.status not in (JobStatus.SUCCEEDED, JobStatus.FAILED):
                return
            if event.job_id in self._seen:
                return
            self._seen[event.job_id] = None
            if len(self._seen) > _SEEN:
                self._seen.popitem(last=False)
            if started is not None:
                seconds = (event.at - started).total_seconds()
                self.job_duration.labels(status=event.status.value).observe(max(seconds, 0.0))
                return
            task = asyncio.create_task(self._observe(runtime, event.job_id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        runtime.events.listeners.append(on_event)

    async def _observe(self, runtime: Runtime, job_id: str) -> None:
        try:
            async with runtime.db.transaction() as session:
                job = await repo.get_job(session, job_id)
        except NotFound:
            return
        except Exception as exc:
            log.warning("job duration of %s not recorded: %s", job_id, exc)
            return
        if job.started_at is not None and job.finished_at is not None and job.status.terminal:
            seconds = (job.finished_at - job.started_at).total_seconds()
            self.job_duration.labels(status=job.status.value).observe(max(seconds, 0.0))


async def _queue_depth(runtime: Runtime) -> float:
    broker = runtime.broker
    if broker is None or not runtime.broker_connected:
        return float("nan")
    try:
        channel = await broker.connection.channel()
        try:
            queue = await channel.declare_queue(runtime.settings.jobs_queue, passive=True)
            count = queue.declaration_result.message_count
        finally:
            await channel.close()
    except Exception as exc:
        log.warning("queue depth unavailable: %s", exc)
        return float("nan")
    return float(count) if count is not None else float("nan")


class RequestTimer:
    """ASGI middleware feeding `http_latency` (websockets are not timed)."""

    def __init__(
        self, app: ASGIApp, metrics: Metrics, templates: Callable[[], Iterable[str]]
    ) -> None:
        self.app = app
        self.metrics = metrics
        self._templates = templates
        self._compiled: list[tuple[re.Pattern[str], str]] | None = None

    def _template(self, scope: Scope) -> str:
        path = getattr(scope.get("route"), "path", None)
        if path:
            return str(path)
        # Routes FastAPI does not stamp on the scope (GraphQL's): match the known templates.
        if self._compiled is None:
            self._compiled = [(compile_path(t)[0], t) for t in self._templates()]
        for pattern, template in self._compiled:
            if pattern.match(scope["path"]):
                return template
        return "unmatched"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        start = time.perf_counter()

        async def timed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            route = self._template(scope)
            self.metrics.http_latency.labels(
                method=scope["method"], route=route, status=str(status)
            ).observe(time.perf_counter() - start)


router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format."},
        401: {"description": "No API key, or an unknown or revoked one."},
    },
)
async def metrics(
    runtime: Runtime = Depends(get_runtime),  # noqa: B008
    _principal: Principal = Depends(get_principal),  # noqa: B008
) -> Response:
    """Prometheus metrics (scrape with `authorization: {credentials: ae_...}`)."""
    body, content_type = await runtime.metrics.render(runtime)
    return Response(body, media_type=content_type)
