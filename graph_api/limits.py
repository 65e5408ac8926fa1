"""Request-size and query-complexity limits.

`SlowBodyGuard` bounds the time a request body may take (see its docstring).

`BodyLimit` refuses a body that announces more than the upload limit (Content-Length; a
body that is not multipart may hold no file, so its limit is `ENVELOPE_BYTES`) before
anything is read, and counts the bytes of bodies that announce nothing (chunked): once past
the limit it stops reading and answers 413 `PAYLOAD_TOO_LARGE` whatever the route would have
said. The file itself is also counted against `max_upload_bytes` as it is stored.

The GraphQL limits below bound what one document may ask for; their errors come back with
code `GRAPHQL_VALIDATION_FAILED` (depth, tokens, aliases) or `QUERY_TOO_COMPLEX` (fragments,
expanded size) and a message naming the limit.
"""

from __future__ import annotations

import asyncio

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from graph_api.errors import error_response
from jobs.errors import BodyTooSlow, PayloadTooLarge

# Room for the multipart envelope and the GraphQL operation around the file itself.
ENVELOPE_BYTES = 1 << 20

MAX_QUERY_DEPTH = 10  # selection-set nesting (introspection is not counted)
MAX_QUERY_TOKENS = 10_000  # lexer tokens of one document: pass big chains as variables
MAX_QUERY_ALIASES = 20
# Checked before validation (`graph_api.complexity`), which walks every spread written out.
MAX_FRAGMENTS = 50
MAX_EXPANDED_SELECTIONS = 1_000  # GraphiQL's introspection query counts about 240


class BodyTooLarge(PayloadTooLarge):
    pass


class BodyLimit:
    def __init__(self, app: ASGIApp, max_upload_bytes: int) -> None:
        self.app = app
        self.max_upload_body = max_upload_bytes + ENVELOPE_BYTES

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        # Only a multipart request carries a file; anything else (a GraphQL JSON document,
        # a form of fields) fits in the envelope, and is parsed whole in memory.
        multipart = headers.get(b"content-type", b"").lower().startswith(b"multipart/")
        max_body = self.max_upload_body if multipart else ENVELOPE_BYTES
        refusal = error_response(BodyTooLarge(f"the request body exceeds {max_body} bytes"))
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > max_body:
            await refusal(scope, receive, send)
            return
        received = 0
        exceeded = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_body:
                    exceeded = True
                    raise BodyTooLarge(f"the request body exceeds {max_body} bytes")
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                # Whatever the route made of the interrupted body, the answer is 413.
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await refusal(scope, receive, send)
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
            if not started:
                await refusal(scope, receive, send)


class SlowBodyGuard:
    """A deadline on reading a request body, counted only while the app waits for the
    client: `timeout_s` plus 1/`min_bytes_per_s` s for every byte received so far (a body
    that keeps up that average never times out; one byte a second soon does). Past it the
    answer is 408 `REQUEST_TIMEOUT`. A response that starts before the body is read whole
    (a refusal) closes the connection, so its unread rest is not waited for either."""

    def __init__(self, app: ASGIApp, timeout_s: float, min_bytes_per_s: int) -> None:
        self.app = app
        self.timeout_s = timeout_s
        self.min_bytes_per_s = min_bytes_per_s

    def _refusal(self) -> JSONResponse:
        slow = BodyTooSlow(
            "the request body arrived too slowly (at least "
            f"{self.min_bytes_per_s} bytes per second are expected)"
        )
        return error_response(slow, headers={"Connection": "close"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        received = 0
        waited = 0.0
        headers = dict(scope["headers"])
        complete = headers.get(b"content-length", b"0") == b"0" and (
            b"transfer-encoding" not in headers
        )
        expired = False
        started = False

        async def timed_receive() -> Message:
            nonlocal received, waited, complete, expired
            if complete:  # afterwards the app only listens for a disconnect
                return await receive()
            allowance = self.timeout_s + received / self.min_bytes_per_s - waited
            begun = loop.time()
            try:
                async with asyncio.timeout(max(allowance, 0.0)):
                    message = await receive()
            except TimeoutError:
                expired = True
                raise BodyTooSlow("the request body arrived too slowly") from None
            finally:
                waited += loop.time() - begun
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                complete = not message.get("more_body", False)
            else:
                complete = True
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if expired:
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await self._refusal()(scope, receive, send)
                return
            if message["type"] == "http.response.start":
                started = True
                if not complete:
                    message = {**message, "headers": [*message["headers"], _CLOSE]}
            await send(message)

        try:
            await self.app(scope, timed_receive, guarded_send)
        except Exception:
            if not expired:
                raise
            if not started:
                await self._refusal()(scope, receive, send)


_CLOSE = (b"connection", b"close")
