"""Requests to URLs a client gave us, guarded against server-side request forgery (SSRF).

Every URL the engine fetches (`importAudio`) or sends to (webhooks, `OutputInput.url`) goes
through `open_url`: only `http` and `https`; the host is resolved once and EVERY address it
resolves to is checked (one bad address refuses the URL: a resolver may hand out either);
the request then connects to the checked address itself, with the name only in the `Host`
header and TLS's SNI (and certificate check), so a second lookup cannot answer differently
(DNS rebinding). Redirects are followed by hand, each hop checked the same way, up to
`Settings.url_max_redirects`.

Link-local addresses (169.254.0.0/16, fe80::/10, where clouds serve instance metadata and
credentials) and fd00:ec2::254 (AWS's IPv6 metadata) are refused always, like unspecified,
multicast and reserved ones. Loopback, private, shared (CGNAT), unique-local and every other
non-global address are refused unless `AUDIO_ENGINE_ALLOW_PRIVATE_URLS=true`. A refusal is
`UrlRefused` (`BAD_INPUT`) naming the address and why.

>>> async with open_url(client, "GET", "https://example.com/a.wav", guard) as r:  # doctest: +SKIP
...     async for chunk in r.aiter_bytes(): ...
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from jobs.errors import RedirectLoop, UrlRefused, UrlTimeout, UrlUnreachable
from jobs.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALWAYS_REFUSED: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...] = (
    (ipaddress.ip_network("169.254.0.0/16"), "link-local (cloud metadata)"),
    (ipaddress.ip_network("fe80::/10"), "link-local"),
    (ipaddress.ip_network("fd00:ec2::254/128"), "cloud metadata"),
)
SCHEMES = ("http", "https")
REDIRECTS = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True, slots=True)
class UrlGuard:
    """What a process allows of outgoing requests: from `Settings` (`guard_of`)."""

    allow_private: bool = False
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 30.0
    max_redirects: int = 5

    @property
    def timeout(self) -> httpx.Timeout:
        return httpx.Timeout(
            connect=self.connect_timeout_s,
            read=self.read_timeout_s,
            write=self.read_timeout_s,
            pool=self.connect_timeout_s,
        )


def guard_of(settings: Settings) -> UrlGuard:
    return UrlGuard(
        allow_private=settings.allow_private_urls,
        connect_timeout_s=settings.url_connect_timeout_s,
        read_timeout_s=settings.url_read_timeout_s,
        max_redirects=settings.url_max_redirects,
    )


def address_refusal(address: IPAddress, allow_private: bool) -> str | None:
    """Why `address` may not be reached, or None when it may."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for network, what in ALWAYS_REFUSED:
        if address in network:
            return f"{address} is a {what} address, always refused"
    if address.is_unspecified or address.is_multicast or address.is_reserved:
        return f"{address} is an unspecified, multicast or reserved address, always refused"
    if address.is_global:
        return None
    if allow_private:
        return None
    kind = "loopback" if address.is_loopback else "private" if address.is_private else "non-public"
    return (
        f"{address} is a {kind} address; the server refuses those unless "
        "AUDIO_ENGINE_ALLOW_PRIVATE_URLS=true"
    )


def check_scheme(url: str, schemes: tuple[str, ...] = SCHEMES) -> str:
    """`url` if its scheme and host are acceptable; else `UrlRefused`."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError on a bad port)
    except ValueError as exc:
        raise UrlRefused(f"{url!r} is not a valid URL: {exc}") from None
    if parts.scheme.lower() not in schemes:
        raise UrlRefused(f"{url!r}: only {', '.join(s + '://' for s in schemes)} URLs are accepted")
    if parts.scheme.lower() in SCHEMES and not parts.hostname:
        raise UrlRefused(f"{url!r} names no host")
    if parts.username is not None or parts.password is not None:
        raise UrlRefused(f"{url!r}: credentials in a URL are not accepted")
    return url


@dataclass(frozen=True, slots=True)
class Target:
    """One checked hop: the URL as given, and the address requests connect to."""

    url: str
    host: str
    address: IPAddress
    request_url: str
    host_header: str


async def resolve(url: str, guard: UrlGuard) -> Target:
    """Check `url`'s scheme, resolve its host, check every address (see the module)."""
    check_scheme(url)
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    try:
        addresses: list[IPAddress] = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except OSError as exc:
            raise UrlUnreachable(f"{url}: cannot resolve {host!r} ({exc})") from None
        addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
    if not addresses:
        raise UrlUnreachable(f"{url}: {host!r} resolves to no address")
    for address in addresses:
        why = address_refusal(address, guard.allow_private)
        if why is not None:
            raise UrlRefused(f"{url}: {why}")
    address = addresses[0]
    literal = f"[{address}]" if address.version == 6 else str(address)
    netloc = f"{literal}:{port}"
    request_url = urlunsplit((parts.scheme.lower(), netloc, parts.path or "/", parts.query, ""))
    host_header = parts.netloc.rpartition("@")[2]
    return Target(url, host, address, request_url, host_header)


@asynccontextmanager
async def open_url(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    guard: UrlGuard,
    *,
    content: bytes | AsyncIterator[bytes] | None = None,
    headers: Mapping[str, str] | None = None,
    follow_redirects: bool = True,
) -> AsyncIterator[httpx.Response]:
    """A streamed response of `method url` through the guard. GET follows redirects (each
    hop checked; a repeat or more than `guard.max_redirects` is `RedirectLoop`); other
    methods get the 3xx itself. `UrlUnreachable` when nothing answers, `UrlTimeout` when
    connecting or a read takes longer than the guard's timeouts. The client must not follow
    redirects itself."""
    seen: list[str] = []
    while True:
        target = await resolve(url, guard)
        request = client.build_request(
            method,
            target.request_url,
            content=content,
            headers={**(headers or {}), "Host": target.host_header},
            timeout=guard.timeout,
            extensions={"sni_hostname": target.host},
        )
        try:
            response = await client.send(request, stream=True)
        except httpx.TimeoutException as exc:
            raise UrlTimeout(f"{url}: no answer in time ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:
            raise UrlUnreachable(f"{url}: {type(exc).__name__}: {exc}") from None
        try:
            location = response.headers.get("location")
            if follow_redirects and response.status_code in REDIRECTS and location:
                seen.append(url)
                url = urljoin(url, location)
                if url in seen:
                    raise RedirectLoop(f"{seen[0]}: the redirects loop back to {url}")
                if len(seen) > guard.max_redirects:
                    raise RedirectLoop(
                        f"{seen[0]}: more than {guard.max_redirects} redirects (last to {url})"
                    )
                if response.status_code == 303:
                    method, content = "GET", None
                continue
            yield response
            return
        finally:
            await response.aclose()
