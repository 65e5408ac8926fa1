"""Storing an uploaded audio file: streamed to a scratch file, probed, stored, registered.

Shared by the `uploadAudio` mutation and `POST /files`. The body is copied in chunks (never
held whole in memory) to a scratch file, probed with libsndfile, and only then moved into
storage under its key `in/<file_id>.<ext>` (a rename on the local folder, a multipart upload
to object storage); undecodable, truncated, non-finite, oversized or out-of-limits uploads
(see `jobs.probe.inspect`) leave nothing behind. The row is written only once the blob is
stored, so an accepted upload is never lost; a store that is down is a 503.
"""

from __future__ import annotations

import asyncio
import unicodedata
from pathlib import Path
from typing import BinaryIO, Protocol

from graph_api.runtime import Runtime
from jobs.db import repository as repo
from jobs.errors import PayloadTooLarge
from jobs.models import AudioFile
from jobs.probe import inspect

CHUNK_BYTES = 1 << 20
MAX_FILENAME = 200
# libsndfile containers whose usual file extension is not their lowercased name.
_EXTENSIONS = {"WAVEX": "wav", "RF64": "wav", "OGG": "ogg", "MPEG": "mp3"}


class Readable(Protocol):
    """What both Strawberry's `Upload` and FastAPI's `UploadFile` are (Starlette files)."""

    filename: str | None

    async def read(self, size: int = -1) -> bytes: ...


def clean_filename(raw: str | None) -> str:
    """Basename only, no control characters, at most `MAX_FILENAME` characters."""
    name = (raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    if name in {"", ".", ".."}:
        return "upload"
    if len(name) > MAX_FILENAME:
        _stem, dot, ext = name.rpartition(".")
        keep = f"{dot}{ext}" if dot and len(ext) <= 10 else ""
        name = name[: MAX_FILENAME - len(keep)] + keep
    return name


def extension(container: str) -> str:
    return _EXTENSIONS.get(container.upper(), container.lower())


async def store_upload(runtime: Runtime, upload: Readable, owner: str | None = None) -> AudioFile:
    """Store, probe and register one upload for `owner`; raises `PayloadTooLarge` or
    `UnsupportedAudio`."""
    storage, limit = runtime.storage, runtime.settings.max_upload_bytes
    file_id = repo.new_id()
    with storage.scratch() as tmp:  # removed at the end whatever happens
        size = await _copy(upload, tmp, limit)
        info = await asyncio.to_thread(inspect, tmp, runtime.settings)
        key = f"in/{file_id}.{extension(info.format)}"
        await asyncio.to_thread(storage.adopt, tmp, key)
    record = AudioFile(
        id=file_id,
        filename=clean_filename(upload.filename),
        format=info.format,
        subtype=info.subtype,
        sample_rate=info.sample_rate,
        channels=info.channels,
        frames=info.frames,
        size_bytes=size,
        storage_key=key,
        role="input",
        owner=owner,
        created_at=repo.now(),
    )
    try:
        return await runtime.store.add_file(record)
    except BaseException:
        await asyncio.to_thread(storage.delete, key)
        raise


async def _copy(upload: Readable, target: Path, limit: int) -> int:
    await asyncio.to_thread(target.parent.mkdir, parents=True, exist_ok=True)
    out: BinaryIO = await asyncio.to_thread(open, target, "wb")
    size = 0
    try:
        while chunk := await upload.read(CHUNK_BYTES):
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"the upload exceeds the {limit} byte limit")
            await asyncio.to_thread(out.write, chunk)
    finally:
        await asyncio.to_thread(out.close)
    return size
