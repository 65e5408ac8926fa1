"""Streaming a stored blob over HTTP with `Range` support, from either storage backend.

Starlette's `FileResponse` needs a local path; an object in S3 has none, so the bytes come
from `Storage.chunks` (ranged GETs on S3, a seek on disk), iterated in a worker thread by
`StreamingResponse`. One `bytes=` range is honoured (206); several are answered with the
whole body (200), which RFC 9110 allows; an unsatisfiable one is 416.
"""

from __future__ import annotations

import asyncio
import re
from urllib.parse import quote

from fastapi.responses import Response, StreamingResponse

from jobs.errors import FileNotFound
from jobs.storage import Storage

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """`(start, end)` (end exclusive) of a single-range header; None for the whole body;
    `ValueError` if it cannot be satisfied."""
    if not header:
        return None
    match = _RANGE.match(header.strip().replace(" ", ""))
    if match is None:
        return None  # several ranges or another unit: the whole body
    first, last = match.groups()
    if not first and not last:
        raise ValueError(header)
    if not first:  # the last N bytes
        start, end = max(0, size - int(last)), size
    else:
        start = int(first)
        end = min(size, int(last) + 1) if last else size
    if start >= size or start >= end:
        raise ValueError(header)
    return start, end


def content_disposition(filename: str) -> str:
    quoted = quote(filename)
    if quoted != filename:
        return f"attachment; filename*=utf-8''{quoted}"
    return f'attachment; filename="{filename}"'


async def stream_blob(
    storage: Storage,
    key: str,
    file_id: str,
    media_type: str,
    range_header: str | None,
    headers: dict[str, str] | None = None,
) -> Response:
    """The blob under `key` as a response; `FileNotFound(file_id)` if it is gone."""
    try:
        size = await asyncio.to_thread(storage.size, key)
    except FileNotFoundError:
        raise FileNotFound(file_id) from None
    base = {"accept-ranges": "bytes", **(headers or {})}
    try:
        wanted = byte_range(range_header, size)
    except ValueError:
        return Response(status_code=416, headers={**base, "content-range": f"bytes */{size}"})
    if wanted is None:
        body = storage.chunks(key)
        return StreamingResponse(
            body, media_type=media_type, headers={**base, "content-length": str(size)}
        )
    start, end = wanted
    return StreamingResponse(
        storage.chunks(key, start, end),
        status_code=206,
        media_type=media_type,
        headers={
            **base,
            "content-length": str(end - start),
            "content-range": f"bytes {start}-{end - 1}/{size}",
        },
    )
