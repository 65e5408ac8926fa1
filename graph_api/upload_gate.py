"""Uploads are authenticated before their body is read.

FastAPI parses a multipart form before it solves a route's dependencies, and Strawberry
before a resolver's permission runs, so without this a caller with no key could still make
the API read and spool an upload of up to `max_upload_bytes`. `AuthenticateUploads` checks the
`Authorization` header of every multipart request first and answers an unknown key the way
the route would have: 401 `UNAUTHENTICATED` on REST, a GraphQL error on `/graphql`.
"""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from graph_api.auth import authenticate, bearer
from jobs.errors import Unauthenticated


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return ""


class AuthenticateUploads:
    def __init__(self, app: ASGIApp, auth_enabled: bool) -> None:
        self.app = app
        self.auth_enabled = auth_enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            not self.auth_enabled
            or scope["type"] != "http"
            or not _header(scope, b"content-type").lower().startswith("multipart/")
        ):
            await self.app(scope, receive, send)
            return
        runtime = scope["app"].state.runtime
        try:
            await authenticate(runtime.db, bearer(_header(scope, b"authorization")))
        except Unauthenticated as exc:
            await _refusal(scope, exc)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _refusal(scope: Scope, exc: Unauthenticated) -> JSONResponse:
    if str(scope["path"]).rstrip("/").endswith("/graphql"):
        error = {"message": exc.message, "extensions": {"code": exc.code}}
        return JSONResponse({"data": None, "errors": [error]})
    return JSONResponse(
        {"code": exc.code, "message": exc.message},
        status_code=401,
        headers={"WWW-Authenticate": "Bearer"},
    )
