"""Running the services: the API, the bridge, or both in one process (`serve`).

Signals are handled here, once: SIGINT/SIGTERM stop the HTTP server (open subscriptions are
closed with a proper close frame by uvicorn) and then the bridge, which stops consuming and
finishes or requeues what it holds before the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import sys
from collections.abc import Iterator

import uvicorn
import uvloop

from cli import exits
from jobs import tracing
from jobs.broker import Broker
from jobs.errors import BrokerUnavailable, StorageMisconfigured, StorageUnavailable
from jobs.settings import Settings
from jobs.storage import open_storage

log = logging.getLogger("audio_engine")


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the process-wide handler below decides."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def run(command: str, settings: Settings) -> int:
    try:
        # uvloop: the API and the bridge are event-loop bound (HTTP, AMQP, Ray futures), and
        # its loop costs a fraction of asyncio's own per callback.
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(_run(command, settings))
    except (BrokerUnavailable, StorageUnavailable) as exc:
        print(f"audio-engine: {exc}", file=sys.stderr)
        return exits.UNREACHABLE
    except StorageMisconfigured as exc:
        print(f"audio-engine: {exc}", file=sys.stderr)
        return exits.BAD_INPUT


async def _run(command: str, settings: Settings) -> int:
    with_api = command in ("serve", "api")
    with_bridge = command in ("serve", "bridge")
    tracing.setup(settings, command)  # spans exported only when OTEL_* says where
    # A wrong storage URL, a missing bucket or refused credentials: one line, not a trace.
    await asyncio.to_thread(open_storage(settings).check)
    if with_bridge:
        # Fail fast with a how-to rather than a stack trace when there is no broker.
        probe = await Broker.connect(settings)
        await probe.close()

    server = None
    server_task: asyncio.Task[None] | None = None
    if with_api:
        from graph_api.app import create_app
        from graph_api.serving import uvicorn_config

        app = create_app(settings)
        server = _Server(
            uvicorn_config(
                app,
                settings,
                log_level="info",
                lifespan="on",
            )
        )
        server_task = asyncio.create_task(server.serve())
        log.info(
            "API on http://%s:%s/graphql (GraphiQL there)", settings.api_host, settings.api_port
        )

    bridge = None
    if with_bridge:
        from bridge.service import Bridge

        # After the API: it already listens for the bridge's first heartbeat, so `/readyz`
        # turns green as soon as the pool is warm instead of one heartbeat later, and the
        # API answers (503 on /readyz) while Ray starts.
        bridge = Bridge(settings)
        try:
            await bridge.start()
        except BaseException:
            if server is not None and server_task is not None:
                server.should_exit = True
                await server_task
            raise
        log.info("bridge consuming %s", settings.jobs_queue)

    # After Ray started (it installs its own SIGTERM handler in the driver): ours decides.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    # Everything built at start (schema, engines, Ray) lives as long as the process: keep it
    # out of the garbage collector's scans, which otherwise cost a request a fraction of a ms.
    gc.freeze()
    waiters: list[asyncio.Future[object]] = [asyncio.ensure_future(stop.wait())]
    if server_task is not None:
        waiters.append(server_task)  # type: ignore[arg-type]
    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)

    log.info("shutting down")
    if server is not None and server_task is not None:
        server.should_exit = True
        await server_task
    if bridge is not None:
        await bridge.stop()
    return 0
