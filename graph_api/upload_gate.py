"""Uploads are authenticated before their body is read.

FastAPI parses a multipart form before it solves a route's dependencies, and Strawberry
before a resolver's permission runs, so without this a caller with no key could still make
the API read and spool an upload of up to `max_upload_bytes`. `AuthenticateUploads` checks the
`Authorization` header of every multipart request first and answers an unknown key the way
the route would have: 401 `UNAUTHENTICATED` on REST, a GraphQL error on `/graphql`.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from graph_api.auth import authenticate, bearer
from graph_api.errors import engine_error_response
from jobs.errors import Unauthenticated


class AuthenticateUploads:
    def __init__(self, app: ASGIApp, auth_enabled: bool) -> None:
        self.app = app
        self.auth_enabled = auth_enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.auth_enabled or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if not headers.get("content-type", "").lower().startswith("multipart/"):
            await self.app(scope, receive, send)
            return
        runtime = scope["app"].state.runtime
        try:
            await authenticate(runtime.db, bearer(headers.get("authorization", "")))
        except Unauthenticated as exc:
            await (await _refusal(scope, exc))(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def _refusal(scope: Scope, exc: Unauthenticated) -> Response:
    if str(scope["path"]).rstrip("/").endswith("/graphql"):
        error = {"message": exc.message, "extensions": {"code": exc.code}}
        return JSONResponse({"data": None, "errors": [error]})
    return await engine_error_response(Request(scope), exc)
