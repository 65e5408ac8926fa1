"""The ASGI application: GraphQL at `/graphql`, files at `/files`, probes at `/healthz` and
`/readyz`, Prometheus metrics at `/metrics`, OpenAPI docs at `/docs`.

>>> app = create_app(Settings())                                  # doctest: +SKIP
>>> uvicorn.run(app, host=settings.api_host, port=settings.api_port)  # doctest: +SKIP

Every operation but the probes needs an API key (`Authorization: Bearer ae_...`, see
`graph_api.auth`), checked before anything is parsed (`graph_api.gate`), unless
`Settings.auth_enabled` is off (`--dev`). Multipart requests (GraphQL
uploads, `POST /files`) need an `Apollo-Require-Preflight: true` or `X-Requested-With` header
when sent from a browser: see `graph_api.csrf`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from graph_api import files, health, metrics, web
from graph_api.auth import ensure_first_key, first_key_banner
from graph_api.csrf import RequirePreflight
from graph_api.endpoint import GraphQLEndpoint
from graph_api.errors import engine_error_response
from graph_api.gate import AuthenticateFirst
from graph_api.limits import BodyLimit, SlowBodyGuard
from graph_api.metrics import Metrics, RequestTimer
from graph_api.runtime import Runtime
from jobs.errors import EngineError
from jobs.settings import Settings

log = logging.getLogger(__name__)

INSECURE = (
    "AUTHENTICATION IS DISABLED (--dev / AUDIO_ENGINE_AUTH_ENABLED=false): anyone who can "
    "reach this API can read, change and delete everything. Never run it like this outside "
    "your own machine."
)


def create_app(settings: Settings) -> FastAPI:
    """One app per settings; its lifespan owns the database, broker and relays."""
    app_metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = Runtime(settings, app_metrics)
        await runtime.start()
        app.state.runtime = runtime
        try:
            if settings.auth_enabled:
                key = await ensure_first_key(runtime.db)
                if key is not None:
                    print(first_key_banner(key, settings), flush=True)
            else:
                log.warning(INSECURE)
            yield
        finally:
            await runtime.stop()

    app = FastAPI(
        title="Audio engine API",
        description="Upload audio, run effect chains, follow jobs. GraphQL at /graphql. "
        "Every route but /healthz and /readyz needs `Authorization: Bearer <API key>`.",
        lifespan=lifespan,
    )
    app.include_router(GraphQLEndpoint(settings.auth_enabled), prefix="/graphql")
    app.include_router(files.router)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(web.router)
    app.add_exception_handler(EngineError, engine_error_response)
    app.add_middleware(AuthenticateFirst, auth_enabled=settings.auth_enabled)
    app.add_middleware(RequirePreflight)
    app.add_middleware(BodyLimit, max_upload_bytes=settings.max_upload_bytes)
    app.add_middleware(
        RequestTimer, metrics=app_metrics, templates=lambda: ["/graphql", *app.openapi()["paths"]]
    )
    app.add_middleware(
        SlowBodyGuard,
        timeout_s=settings.body_timeout_s,
        min_bytes_per_s=settings.body_min_bytes_per_s,
    )
    app.state.metrics = app_metrics
    return app
