"""Slow and greedy clients against a real uvicorn (`graph_api.serving`): slowloris-style
headers and bodies are answered 408 and closed, one address cannot hold more than its share
of connections, and `/healthz` keeps answering meanwhile.

Client loops are bounded in count and time and use loopback addresses only (127.0.0.x, all
this machine's); timings are generous deadlines, never measurements."""

from __future__ import annotations

import asyncio
import contextlib
import time

import httpx
from api_client import make_key, serving
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from jobs.settings import Settings

GIVE_UP_S = 20.0  # a slow client stops trickling after this, cut off or not
TRICKLE_S = 0.2


async def _slow_client(address: str, source: str, head: bytes, trickle: bytes) -> bytes:
    """Send `head`, then `trickle` every TRICKLE_S until the server closes the connection
    (or GIVE_UP_S passes); returns what the server said. b"open" if it never closed."""
    host, port = address.split(":")
    reader, writer = await asyncio.open_connection(host, int(port), local_addr=(source, 0))
    answer = bytearray()

    async def read_all() -> None:
        # A reset (trickled bytes the server never read when it closed) is a cut-off too.
        with contextlib.suppress(ConnectionResetError):
            while chunk := await reader.read(4096):
                answer.extend(chunk)

    reading = asyncio.create_task(read_all())
    try:
        writer.write(head)
        deadline = time.monotonic() + GIVE_UP_S
        while not reading.done() and time.monotonic() < deadline:
            with contextlib.suppress(ConnectionError):
                writer.write(trickle)
                await writer.drain()
            await asyncio.wait([reading], timeout=TRICKLE_S)
        if not reading.done():
            return b"open"
        return bytes(answer) or b"closed"
    finally:
        reading.cancel()
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def _healthz_until(address: str, work: asyncio.Future[list[bytes]]) -> int:
    answered = 0
    async with httpx.AsyncClient(base_url=f"http://{address}", timeout=5) as probe:
        while not work.done():
            assert (await probe.get("/healthz")).status_code == 200  # within 5 s each
            answered += 1
            await asyncio.sleep(0.1)
    return answered


async def test_slow_headers_and_bodies_are_cut_off_while_healthz_answers(
    secure_settings: Settings,
) -> None:
    settings = secure_settings.model_copy(
        update={"header_timeout_s": 1.0, "body_timeout_s": 1.0, "body_min_bytes_per_s": 1000}
    )
    key = await make_key(settings, "alice")
    slow_head = b"GET /healthz HTTP/1.1\r\nHost: api\r\n"
    slow_body = (
        "POST /graphql HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {key}\r\nContent-Length: 100000\r\n\r\n"
        '{"query": "'
    ).encode()
    async with serving(settings) as address:
        clients = [
            *(_slow_client(address, "127.0.0.2", slow_head, b"X-A: b\r\n") for _ in range(50)),
            *(_slow_client(address, "127.0.0.3", slow_body, b" ") for _ in range(10)),
        ]
        work = asyncio.ensure_future(asyncio.gather(*clients))
        answered = await _healthz_until(address, work)
        outcomes = await work
    assert answered >= 1
    assert b"open" not in outcomes  # every slow client was cut off by the server
    told = [o for o in outcomes if o != b"closed"]
    assert len(told) >= 50, outcomes  # nearly all read the 408 before the close
    for outcome in told:
        assert outcome.startswith(b"HTTP/1.1 408"), outcome
        assert b"REQUEST_TIMEOUT" in outcome
    assert any(b"headers" in o for o in outcomes[:50])
    assert any(b"too slowly" in o for o in outcomes[50:])


async def test_connections_per_address_are_capped(secure_settings: Settings) -> None:
    settings = secure_settings.model_copy(
        update={"max_connections_per_client": 20, "header_timeout_s": 60.0}
    )
    async with serving(settings) as address:
        host, port = address.split(":")
        opened = [
            await asyncio.open_connection(host, int(port), local_addr=("127.0.0.4", 0))
            for _ in range(25)
        ]
        try:

            async def answer(reader: asyncio.StreamReader) -> bytes:
                try:
                    return await asyncio.wait_for(reader.read(4096), 2.0)
                except TimeoutError:
                    return b"still open"

            answers = await asyncio.gather(*(answer(reader) for reader, _ in opened))
            refused = [a for a in answers if a.startswith(b"HTTP/1.1 429")]
            assert len(refused) == 5, answers
            assert b"TOO_MANY_CONNECTIONS" in refused[0]
            assert answers[:20] == [b"still open"] * 20
            # Other addresses are not affected, and a freed slot is usable again.
            async with httpx.AsyncClient(base_url=f"http://{address}", timeout=5) as other:
                assert (await other.get("/healthz")).status_code == 200
            opened[0][1].close()
            await opened[0][1].wait_closed()
            async with asyncio.timeout(10):
                while True:
                    reader, writer = await asyncio.open_connection(
                        host, int(port), local_addr=("127.0.0.4", 0)
                    )
                    writer.write(b"GET /healthz HTTP/1.1\r\nHost: api\r\n\r\n")
                    reply = await reader.read(4096)
                    writer.close()
                    if reply.startswith(b"HTTP/1.1 200"):
                        break
                    await asyncio.sleep(0.05)  # the server had not seen the close yet
        finally:
            for _, writer in opened:
                writer.close()


async def _http_status(address: str, source: str) -> bytes:
    host, port = address.split(":")
    reader, writer = await asyncio.open_connection(host, int(port), local_addr=(source, 0))
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n")
        return (await asyncio.wait_for(reader.read(4096), 5)).split(b"\r\n")[0]
    finally:
        writer.close()


async def test_websockets_count_against_the_cap(secure_settings: Settings) -> None:
    settings = secure_settings.model_copy(update={"max_connections_per_client": 3})
    async with serving(settings) as address, contextlib.AsyncExitStack() as sockets:
        for _ in range(3):
            await sockets.enter_async_context(
                connect(
                    f"ws://{address}/graphql",
                    subprotocols=[Subprotocol("graphql-transport-ws")],
                    local_addr=("127.0.0.5", 0),
                )
            )
        assert await _http_status(address, "127.0.0.5") == b"HTTP/1.1 429 Too Many Requests"
        assert await _http_status(address, "127.0.0.6") == b"HTTP/1.1 200 OK"
        await sockets.aclose()
        async with asyncio.timeout(10):
            while await _http_status(address, "127.0.0.5") != b"HTTP/1.1 200 OK":
                await asyncio.sleep(0.05)  # until the server has seen the sockets close


async def test_websocket_compression_is_offered_only_when_asked(settings: Settings) -> None:
    for compression in (False, True):
        chosen = settings.model_copy(update={"websocket_compression": compression})
        async with (
            serving(chosen) as base,
            connect(
                f"ws://{base}/graphql", subprotocols=[Subprotocol("graphql-transport-ws")]
            ) as ws,
        ):
            assert ws.response is not None
            extensions = ws.response.headers.get("Sec-WebSocket-Extensions", "")
            assert ("permessage-deflate" in extensions) is compression, extensions
