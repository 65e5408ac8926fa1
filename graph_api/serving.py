"""How the API is served: uvicorn, guarded against slow and greedy clients.

uvicorn closes idle keep-alive connections but sets no deadline on a request's headers, so a
client that connects and sends a header line now and then holds its connection (and a file
descriptor) for as long as it likes; and it lets one address open any number of them. The
HTTP protocol here adds both bounds below the ASGI app, where no middleware can reach:

- headers must be complete within `Settings.header_timeout_s` of connecting (or of the first
  byte of a next request on a kept-alive connection), else 408 and the connection closes;
- one client address holds at most `Settings.max_connections_per_client` open connections,
  websockets included; one more is answered 429 and closed at once.

Websockets offer no compression unless `Settings.websocket_compression`: a subscription's
messages are a few hundred bytes, deflated separately for each subscriber.

The websocket protocol offers the app one more ASGI scope extension, `fanout.SEND_SOON`:
a text message buffered on the connection without a task switch, the buffer written to the
socket once per loop turn (many subscribers of one burst of job events: one write each).

Slow bodies are bounded in the app (`graph_api.limits.SlowBodyGuard`), where the time spent
waiting on the client can be told from the time the app takes to store what it got.

>>> uvicorn.Server(uvicorn_config(create_app(settings), settings)).run()  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import uvicorn
from uvicorn.config import WS_PROTOCOLS
from uvicorn.importer import import_from_string
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.utils import get_remote_addr
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State

from graph_api.fanout import SEND_SOON
from jobs.settings import Settings


def _response(status: str, code: str, message: str) -> bytes:
    body = json.dumps({"code": code, "message": message}).encode()
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


def _sends_soon(base: type[WebSocketsSansIOProtocol]) -> type[WebSocketsSansIOProtocol]:
    """`base` offering `SEND_SOON` to the app (see the module docstring)."""

    class SendsSoon(base):  # type: ignore[misc, valid-type]
        _flush_due = False

        def handle_connect(self, event: Any) -> None:
            super().handle_connect(event)
            scope = getattr(self, "scope", None)  # set only when the handshake is accepted
            if scope is not None:
                scope["extensions"][SEND_SOON] = self.send_soon

        def send_soon(self, text: str) -> bool:
            if (
                not self.handshake_complete
                or self.close_sent
                or self.initial_response is not None
                or not self.writable.is_set()  # the client lags: the ASGI send waits
                or self.transport.is_closing()
                or self.conn.state is not State.OPEN
            ):
                return False
            self.conn.send_text(text.encode())
            if not self._flush_due:
                self._flush_due = True
                self.loop.call_soon(self._flush)
            return True

        def _flush(self) -> None:
            self._flush_due = False
            output = self.conn.data_to_send()
            if output and not self.transport.is_closing():
                self.transport.write(b"".join(output))

    return SendsSoon


def guarded_protocols(
    settings: Settings, websocket: type[asyncio.Protocol]
) -> tuple[type[asyncio.Protocol], type[asyncio.Protocol]]:
    """HTTP and websocket protocol classes bound to `settings`' limits, sharing one count of
    open connections by address. A connection keeps counting when it upgrades to a websocket:
    the HTTP protocol lets go of it as the websocket protocol takes it."""
    header_timeout = settings.header_timeout_s
    most = settings.max_connections_per_client
    open_by_address: Counter[str] = Counter()

    base = websocket
    if issubclass(websocket, WebSocketsSansIOProtocol):
        base = _sends_soon(websocket)

    class CountedWebSocket(base):  # type: ignore[misc, valid-type]
        _counted: str | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            address = get_remote_addr(transport)
            if most and address is not None:
                open_by_address[address[0]] += 1
                self._counted = address[0]

        def connection_lost(self, exc: Exception | None) -> None:
            if self._counted is not None:
                open_by_address[self._counted] -= 1
                if open_by_address[self._counted] <= 0:
                    del open_by_address[self._counted]
                self._counted = None
            super().connection_lost(exc)

    too_slow = _response(
        "408 Request Timeout",
        "REQUEST_TIMEOUT",
        f"the request headers did not arrive within {header_timeout:g} s",
    )
    too_many = _response(
        "429 Too Many Requests",
        "TOO_MANY_CONNECTIONS",
        f"this address already holds {most} open connections: reuse them",
    )

    class GuardedHttpProtocol(HttpToolsProtocol):
        _header_timer: asyncio.TimerHandle | None = None
        _counted: str | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            address = self.client[0] if self.client else None
            if most and address is not None:
                if open_by_address[address] >= most:
                    transport.write(too_many)
                    transport.close()
                    return
                open_by_address[address] += 1
                self._counted = address
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            self._uncount()
            super().connection_lost(exc)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self._header_timer is None:
                self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def handle_websocket_upgrade(self) -> None:
            self._disarm()
            self._uncount()
            super().handle_websocket_upgrade()

        def _arm(self) -> None:
            self._header_timer = self.loop.call_later(header_timeout, self._headers_too_slow)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _uncount(self) -> None:
            if self._counted is not None:
                open_by_address[self._counted] -= 1
                if open_by_address[self._counted] <= 0:
                    del open_by_address[self._counted]
                self._counted = None

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            if self.transport.is_closing():
                return
            if self.cycle is None or self.cycle.response_complete:
                self.transport.write(too_slow)
            self.transport.close()

    return GuardedHttpProtocol, CountedWebSocket


def uvicorn_config(app: Any, settings: Settings, **options: Any) -> uvicorn.Config:
    """uvicorn's config for `app` with `settings`' address and client limits (`ws` may name
    any of uvicorn's websocket implementations; the sans-I/O one by default: the legacy one
    is deprecated in websockets 14+, and only it offers `SEND_SOON`)."""
    options.setdefault("host", settings.api_host)
    options.setdefault("port", settings.api_port)
    ws = options.pop("ws", "websockets-sansio")
    websocket = import_from_string(WS_PROTOCOLS[ws]) if isinstance(ws, str) else ws
    http, counted_ws = guarded_protocols(settings, websocket)
    options.setdefault("ws_per_message_deflate", settings.websocket_compression)
    return uvicorn.Config(
        app, http=http, ws=counted_ws, timeout_keep_alive=settings.keep_alive_s, **options
    )
