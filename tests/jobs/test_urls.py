"""The SSRF guard: every refused URL class with the default settings, redirects checked hop
by hop, and requests sent to the address that was checked."""

from __future__ import annotations

import httpx
import pytest

from jobs.errors import BadInput, RedirectLoop, UrlRefused, UrlUnreachable
from jobs.settings import Settings
from jobs.urls import UrlGuard, guard_of, open_url, resolve
from tests.http_servers import Reply, Request, http_server

DEFAULT = guard_of(Settings())
PRIVATE_OK = UrlGuard(allow_private=True)

REFUSED_ALWAYS = [
    "http://169.254.169.254/latest/meta-data/",  # AWS/GCP/Azure instance metadata
    "http://169.254.0.1/",
    "http://[fd00:ec2::254]/latest/meta-data/",  # AWS IPv6 metadata
    "http://[fe80::1]/",
    "http://[::ffff:169.254.169.254]/",  # IPv4-mapped IPv6
    "http://0.0.0.0/",
    "http://[::]/",
    "http://224.0.0.1/",
    "http://240.0.0.1/",
]
REFUSED_BY_DEFAULT = [
    "http://127.0.0.1:8000/graphql",
    "http://localhost/",  # a name: its resolved addresses are checked
    "http://2130706433/",  # 127.0.0.1 as one decimal number, which resolvers accept
    "http://0x7f000001/",
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://10.0.0.1/",
    "http://172.16.5.4/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",  # shared address space (CGNAT)
    "http://[fd12:3456::1]/",  # unique-local
    "https://192.0.2.1/",  # documentation range: not global
]
BAD_SCHEMES = [
    "file:///etc/passwd",
    "ftp://example.com/a.wav",
    "gopher://127.0.0.1:25/",
    "s3://bucket/key",
    "example.com/a.wav",
    "http:///nohost",
    "http://user:secret@example.com/a.wav",
]


@pytest.mark.parametrize("url", REFUSED_ALWAYS + REFUSED_BY_DEFAULT + BAD_SCHEMES)
async def test_default_settings_refuse(url: str) -> None:
    assert DEFAULT.allow_private is False
    with pytest.raises(UrlRefused) as caught:
        await resolve(url, DEFAULT)
    assert caught.value.code == "BAD_INPUT"
    assert isinstance(caught.value, BadInput)


@pytest.mark.parametrize("url", REFUSED_ALWAYS)
async def test_metadata_and_link_local_stay_refused_with_private_allowed(url: str) -> None:
    with pytest.raises(UrlRefused, match="always refused"):
        await resolve(url, PRIVATE_OK)


async def test_refusal_names_the_address_and_the_switch() -> None:
    with pytest.raises(UrlRefused) as caught:
        await resolve("http://127.0.0.1/", DEFAULT)
    assert "127.0.0.1 is a loopback address" in caught.value.message
    assert "AUDIO_ENGINE_ALLOW_PRIVATE_URLS=true" in caught.value.message
    with pytest.raises(UrlRefused, match=r"169\.254\.169\.254 is a link-local"):
        await resolve("http://169.254.169.254/", PRIVATE_OK)


async def test_private_allowed_by_setting() -> None:
    target = await resolve("http://localhost:8123/a?b=1", PRIVATE_OK)
    assert target.address.is_loopback
    assert target.host_header == "localhost:8123"
    assert target.request_url.endswith(":8123/a?b=1")
    assert "localhost" not in target.request_url  # connects to the checked address


async def test_unresolvable_host_is_unreachable() -> None:
    with pytest.raises(UrlUnreachable):
        await resolve("http://no-such-host.invalid/", DEFAULT)


async def test_request_goes_to_checked_address_with_the_name_in_host() -> None:
    with http_server(lambda r: Reply(200, body=b"ok")) as server:
        url = f"http://localhost:{server.port}/x"
        async with (
            httpx.AsyncClient(trust_env=False) as client,
            open_url(client, "GET", url, PRIVATE_OK) as response,
        ):
            assert (await response.aread()) == b"ok"
        (seen,) = server.seen()
        assert seen.headers["host"] == f"localhost:{server.port}"


async def test_each_redirect_is_checked() -> None:
    def handle(request: Request) -> Reply:
        return Reply(302, {"Location": "http://169.254.169.254/latest/meta-data/"})

    with http_server(handle) as server:
        async with httpx.AsyncClient(trust_env=False) as client:
            with pytest.raises(UrlRefused, match=r"169\.254\.169\.254"):
                async with open_url(client, "GET", server.url("/start"), PRIVATE_OK):
                    pass
        assert [r.path for r in server.seen()] == ["/start"]


async def test_redirect_loop_and_too_many_redirects() -> None:
    def handle(request: Request) -> Reply:
        if request.path.startswith("/hop"):
            n = int(request.path[4:])
            return Reply(302, {"Location": f"/hop{n + 1}"})
        return Reply(301, {"Location": "/b" if request.path == "/a" else "/a"})

    with http_server(handle) as server:
        async with httpx.AsyncClient(trust_env=False) as client:
            with pytest.raises(RedirectLoop, match="loop back") as loop:
                async with open_url(client, "GET", server.url("/a"), PRIVATE_OK):
                    pass
            assert loop.value.code == "REDIRECT_LOOP"
            with pytest.raises(RedirectLoop, match="more than 5 redirects"):
                async with open_url(client, "GET", server.url("/hop0"), PRIVATE_OK):
                    pass
            with pytest.raises(RedirectLoop):
                async with open_url(
                    client, "GET", server.url("/hop0"), UrlGuard(True, max_redirects=0)
                ):
                    pass
