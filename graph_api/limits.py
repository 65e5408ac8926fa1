"""Refuses request bodies that announce more than the upload limit, before Starlette
spools them to disk; bodies without Content-Length are still counted while stored."""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

# Room for the multipart envelope and the GraphQL operation around the file itself.
ENVELOPE_BYTES = 1 << 20


class BodyLimit:
    def __init__(self, app: ASGIApp, max_upload_bytes: int) -> None:
        self.app = app
        self.max_body = max_upload_bytes + ENVELOPE_BYTES

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            length = dict(scope["headers"]).get(b"content-length", b"")
            if length.isdigit() and int(length) > self.max_body:
                response = JSONResponse(
                    {
                        "code": "PAYLOAD_TOO_LARGE",
                        "message": f"the request body exceeds {self.max_body} bytes",
                    },
                    status_code=413,
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
