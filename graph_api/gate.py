"""Authentication before anything is read or parsed.

FastAPI parses a form before it solves a route's dependencies, and Strawberry parses and
validates a document before a resolver's permission runs, so without this a caller with no
key could still make the API spool an upload of up to `max_upload_bytes`, or parse and
validate whatever document it likes (introspection included). `AuthenticateFirst` checks the
`Authorization` header of every GraphQL operation over HTTP (GET or POST) and of every form
request (multipart or urlencoded) first, and answers an unknown key the way the route would
have: 401 `UNAUTHENTICATED` on REST, a GraphQL error on `/graphql`. Only a GET of `/graphql`
without a `query` passes without a key: that is GraphiQL's page, which sends the key itself
from its Headers pane. Subscriptions are checked at `connection_init` (`graph_api.endpoint`).

The caller it found rides along in the request's state (`PRINCIPAL`), so the GraphQL context
does not look the key up twice.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from graph_api.auth import authenticate, bearer
from graph_api.errors import engine_error_response
from jobs.errors import Unauthenticated

PRINCIPAL = "audio_engine.principal"
# Bodies FastAPI reads whole (and parses) before a route's dependencies run.
FORMS = ("multipart/", "application/x-www-form-urlencoded")


def is_graphql(scope: Scope) -> bool:
    return str(scope["path"]).rstrip("/") == "/graphql"


def needs_key(scope: Scope, headers: Headers) -> bool:
    """Whether the request runs (or uploads) something: every one but GraphiQL's page."""
    if headers.get("content-type", "").lower().startswith(FORMS):
        return True
    if not is_graphql(scope):
        return False
    if scope["method"] in ("GET", "HEAD"):
        return "query" in parse_qs(scope.get("query_string", b"").decode("latin-1"), True)
    return True


class AuthenticateFirst:
    def __init__(self, app: ASGIApp, auth_enabled: bool) -> None:
        self.app = app
        self.auth_enabled = auth_enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.auth_enabled or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if not needs_key(scope, headers):
            await self.app(scope, receive, send)
            return
        runtime = scope["app"].state.runtime
        try:
            principal = await authenticate(runtime.db, bearer(headers.get("authorization", "")))
        except Unauthenticated as exc:
            await (await _refusal(scope, exc))(scope, receive, send)
            return
        scope.setdefault("state", {})[PRINCIPAL] = principal
        await self.app(scope, receive, send)


async def _refusal(scope: Scope, exc: Unauthenticated) -> Response:
    if is_graphql(scope):
        error = {"message": exc.message, "extensions": {"code": exc.code}}
        return JSONResponse({"data": None, "errors": [error]})
    return await engine_error_response(Request(scope), exc)
