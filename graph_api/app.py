"""The ASGI application: GraphQL at `/graphql`, files at `/files`, probes at `/healthz` and
`/readyz`, OpenAPI docs at `/docs`.

>>> app = create_app(Settings())                                  # doctest: +SKIP
>>> uvicorn.run(app, host=settings.api_host, port=settings.api_port)  # doctest: +SKIP

Multipart requests (GraphQL uploads, `POST /files`) need an `Apollo-Require-Preflight: true`
or `X-Requested-With` header: see `graph_api.csrf`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from strawberry.fastapi import GraphQLRouter
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL

from graph_api import files, health
from graph_api.context import Context, get_context
from graph_api.csrf import RequirePreflight
from graph_api.errors import engine_error_response
from graph_api.limits import BodyLimit
from graph_api.runtime import Runtime
from graph_api.schema import schema
from jobs.errors import EngineError
from jobs.settings import Settings

log = logging.getLogger(__name__)


def create_app(settings: Settings) -> FastAPI:
    """One app per settings; its lifespan owns the database, broker and relays."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = Runtime(settings)
        await runtime.start()
        app.state.runtime = runtime
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(
        title="Audio engine API",
        description="Upload audio, run effect chains, follow jobs. GraphQL at /graphql.",
        lifespan=lifespan,
    )
    graphql: GraphQLRouter[Context, None] = GraphQLRouter(
        schema,
        graphql_ide="graphiql",
        context_getter=get_context,
        subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL),
        multipart_uploads_enabled=True,
    )
    app.include_router(graphql, prefix="/graphql")
    app.include_router(files.router)
    app.include_router(health.router)
    app.add_exception_handler(EngineError, engine_error_response)
    app.add_middleware(RequirePreflight)
    app.add_middleware(BodyLimit, max_upload_bytes=settings.max_upload_bytes)
    return app
