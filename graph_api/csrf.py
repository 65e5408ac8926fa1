"""CSRF prevention for multipart uploads and other "simple" POSTs.

A browser sends a cross-site POST whose content type is `multipart/form-data`,
`application/x-www-form-urlencoded` or `text/plain` without a CORS preflight, so enabling
GraphQL multipart uploads (`multipart_uploads_enabled=True`) would let any web page upload
files or run mutations from a visitor's browser; Strawberry leaves that defence to the app.

Such a request passes only if one of these holds:

- it carries a non-empty `Apollo-Require-Preflight`, `X-Apollo-Operation-Name` or
  `X-Requested-With` header (a browser must preflight those, as Apollo Server requires);
- it comes from no browser: no `Origin` header and no cross-site `Sec-Fetch-Site`
  (curl, httpx, the CLI; browsers send `Origin` on every cross-origin POST);
- it is same-origin (GraphiQL served by this app).

JSON requests (`application/json`) always need a preflight and pass untouched. Example::

    curl http://127.0.0.1:8000/graphql -H 'Apollo-Require-Preflight: true' \\
      -F operations='{"query": "mutation($f: Upload!) { uploadAudio(file: $f) { id } }",
                      "variables": {"f": null}}' \\
      -F map='{"0": ["variables.f"]}' -F 0=@song.wav
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from graph_api.errors import error_response
from jobs.errors import CsrfPrevented

SIMPLE_CONTENT_TYPES = frozenset(
    {"multipart/form-data", "application/x-www-form-urlencoded", "text/plain", ""}
)
PREFLIGHT_HEADERS = ("apollo-require-preflight", "x-apollo-operation-name", "x-requested-with")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def may_be_forged(method: str, headers: Headers) -> bool:
    """Whether a request could have been sent by a page on another site."""
    if method in SAFE_METHODS:
        return False
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in SIMPLE_CONTENT_TYPES:
        return False
    if any(headers.get(h) for h in PREFLIGHT_HEADERS):
        return False
    origin = headers.get("origin")
    fetch_site = headers.get("sec-fetch-site")
    if origin is None:
        return fetch_site in {"cross-site", "same-site"}
    if fetch_site == "same-origin":
        return False
    return urlsplit(origin).netloc.lower() != headers.get("host", "").lower()


class RequirePreflight:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and may_be_forged(scope["method"], Headers(scope=scope)):
            response = error_response(
                CsrfPrevented(
                    "this cross-site request could be a request forgery: send a "
                    "non-empty 'Apollo-Require-Preflight' (or 'X-Requested-With') header, "
                    "or use Content-Type application/json"
                )
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
