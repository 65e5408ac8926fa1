"""`importAudio`: a file fetched from a URL, stored exactly like an upload.

The body streams through `graph_api.uploads.store_upload`, so it meets the same limits and
checks (size, then a decode by libsndfile: the content decides, never the extension or the
`Content-Type`). `http(s)://` URLs go through the SSRF guard (`jobs.urls`) with its connect
and read timeouts and redirect bound, and the whole download must end within
`Settings.import_timeout_s`. `s3://bucket/key` reads through the configured object store's
endpoint and credentials, outside the engine's own prefix (those are other owners' blobs);
the key is taken literally, with whatever characters S3 allows.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx

from graph_api.runtime import Runtime
from graph_api.uploads import CHUNK_BYTES, store_upload
from jobs.errors import PayloadTooLarge, UrlRefused, UrlTimeout, UrlUnreachable
from jobs.models import AudioFile
from jobs.storage import ObjectStorage
from jobs.urls import check_scheme, guard_of, open_url


class _Stream:
    """A `Readable` over an async iterator of chunks, each read within `deadline`."""

    def __init__(self, filename: str, chunks: AsyncIterator[bytes], deadline: float, url: str):
        self.filename: str | None = filename
        self._chunks = chunks
        self._deadline = deadline
        self._url = url

    async def read(self, size: int = -1) -> bytes:
        try:
            async with asyncio.timeout_at(self._deadline):
                return await anext(self._chunks, b"")
        except TimeoutError:
            raise UrlTimeout(f"{self._url}: the download took too long") from None
        except httpx.TimeoutException:
            raise UrlTimeout(f"{self._url}: the server stopped sending") from None
        except httpx.HTTPError as exc:
            raise UrlUnreachable(f"{self._url}: the download broke off ({exc})") from None


def _filename(url: str) -> str:
    return unquote(PurePosixPath(urlsplit(url).path).name) or "import"


async def import_audio(runtime: Runtime, url: str, owner: str | None) -> AudioFile:
    """Fetch, check and store `url` for `owner` (see the module)."""
    settings = runtime.settings
    url = check_scheme(url.strip(), ("http", "https", "s3"))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.import_timeout_s
    if urlsplit(url).scheme.lower() == "s3":
        return await _import_s3(runtime, url, owner, deadline)
    guard = guard_of(settings)
    async with (
        httpx.AsyncClient(trust_env=False, follow_redirects=False) as client,
        contextlib.AsyncExitStack() as stack,
    ):
        try:
            async with asyncio.timeout_at(deadline):
                response = await stack.enter_async_context(open_url(client, "GET", url, guard))
        except TimeoutError:
            raise UrlTimeout(f"{url}: no answer within {settings.import_timeout_s:g} s") from None
        if not response.is_success:
            raise UrlUnreachable(f"{url} answered {response.status_code}")
        size = response.headers.get("content-length", "")
        if size.isdigit() and int(size) > settings.max_upload_bytes:
            limit = settings.max_upload_bytes
            raise PayloadTooLarge(f"{url} is {size} bytes; the limit is {limit}")
        stream = _Stream(_filename(url), response.aiter_bytes(CHUNK_BYTES), deadline, url)
        return await store_upload(runtime, stream, owner)


async def _import_s3(runtime: Runtime, url: str, owner: str | None, deadline: float) -> AudioFile:
    own = runtime.storage
    if not isinstance(own, ObjectStorage):
        raise UrlRefused(f"{url}: s3:// URLs need object storage (AUDIO_ENGINE_STORAGE_URL)")
    # Keys are literal, as `aws s3` takes them: "?", "#" and "%" belong to the key.
    bucket, _, key = url[len("s3://") :].partition("/")
    key = key.lstrip("/")
    if not bucket or not key:
        raise UrlRefused(f"{url}: an s3:// URL is s3://bucket/key")
    # Bucket names are case-insensitive to some endpoints: compare as the store would.
    mine = bucket.lower() == own.bucket.lower()
    if mine and (not own.prefix or key.startswith(own.prefix.rstrip("/") + "/")):
        raise UrlRefused(f"{url}: that is the engine's own storage, not a source to import")
    store = ObjectStorage(bucket, "", own.scratch_dir, foreign=True)

    def size() -> int:
        try:
            return store.size(key)
        except FileNotFoundError:
            raise UrlUnreachable(f"{url}: no such object") from None
        except ValueError as exc:
            raise UrlRefused(f"{url}: {exc}") from None

    if (found := await asyncio.to_thread(size)) > runtime.settings.max_upload_bytes:
        raise PayloadTooLarge(
            f"{url} is {found} bytes; the limit is {runtime.settings.max_upload_bytes}"
        )
    parts_iter: Iterator[bytes] = store.chunks(key, 0, found)

    async def chunks() -> AsyncIterator[bytes]:
        while chunk := await asyncio.to_thread(next, parts_iter, b""):
            yield chunk

    stream: Any = _Stream(PurePosixPath(key).name, chunks(), deadline, url)
    return await store_upload(runtime, stream, owner)
