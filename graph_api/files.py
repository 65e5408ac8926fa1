"""REST routes for audio blobs: download with Range support, and a plain multipart upload
for curl users (the GraphQL `uploadAudio` does the same). Both need an API key (unless
authentication is off); another owner's file is 404, exactly like an unknown one."""

from __future__ import annotations

import hashlib
from typing import Any

from fastapi import APIRouter, Depends, File, Header, Request, UploadFile
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel

from graph_api.auth import Principal
from graph_api.context import IDEMPOTENCY_KEY, get_principal, get_runtime
from graph_api.downloads import content_disposition, stream_blob
from graph_api.idempotency import idempotent
from graph_api.runtime import Runtime
from graph_api.uploads import CHUNK_BYTES, store_upload
from jobs.db import repository as repo
from jobs.formats import media_type
from jobs.idempotency import fingerprint
from jobs.models import AudioFile
from jobs.shapes import AudioFileOut, Shape, file_out

router = APIRouter(tags=["files"])


class ErrorOut(BaseModel):
    code: str
    message: str


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorOut, "description": description}


UNAUTHENTICATED = _error("No API key, or an unknown or revoked one (code UNAUTHENTICATED).")


@router.get(
    "/files/{file_id}",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"audio/*": {}}, "description": "The whole file."},
        206: {"content": {"audio/*": {}}, "description": "The requested byte range."},
        401: UNAUTHENTICATED,
        404: _error("No such file, deleted, or not yours (code NOT_FOUND)."),
        416: {"description": "The requested range is not satisfiable."},
    },
)
async def download_file(
    file_id: str,
    request: Request,
    runtime: Runtime = Depends(get_runtime),  # noqa: B008
    principal: Principal = Depends(get_principal),  # noqa: B008
) -> Response:
    """Stream a stored file as an attachment; honours `Range: bytes=...`."""
    file = await runtime.db.run(repo.visible_file, file_id, principal.scope)
    return await stream_blob(
        runtime.storage,
        file.storage_key,
        file.id,
        media_type(file.format),
        request.headers.get("range"),
        {"content-disposition": content_disposition(file.filename)},
    )


@router.post(
    "/files",
    status_code=201,
    response_model=AudioFileOut,
    responses={
        400: _error("A cross-site request without a preflight header (code CSRF_PREVENTED)."),
        401: UNAUTHENTICATED,
        409: _error(
            "The Idempotency-Key was used for another upload, or its first upload still runs "
            "(code CONFLICT)."
        ),
        413: _error("Larger than max_upload_bytes (code PAYLOAD_TOO_LARGE)."),
        415: _error(
            "Not decodable audio, truncated, a NaN, infinite or absurdly large sample, or "
            "beyond the duration, channel or sample-rate limits (code UNSUPPORTED_AUDIO)."
        ),
        422: {"description": "The request is not a multipart form with a `file` part."},
    },
)
async def upload_file(
    file: UploadFile = File(..., description="The audio file."),  # noqa: B008
    runtime: Runtime = Depends(get_runtime),  # noqa: B008
    principal: Principal = Depends(get_principal),  # noqa: B008
    idempotency_key: str | None = Header(
        None,
        alias=IDEMPOTENCY_KEY,
        description="Send the same upload again with the same key within 24 h and get the "
        "first file back instead of a copy; a different upload with the key is 409 CONFLICT.",
    ),
) -> Shape:
    """Store an audio file:
    `curl -F file=@a.wav -H 'Authorization: Bearer ae_...' HOST/files`."""

    async def make() -> AudioFile:
        return await store_upload(runtime, file, principal.owner)

    async def replay(file_id: str) -> AudioFile:
        return await runtime.db.run(repo.visible_file, file_id, principal.scope)

    print_ = await _fingerprint(file) if idempotency_key is not None else ""
    stored = await idempotent(
        runtime, principal.owner, idempotency_key, "uploadFile", print_, make, replay
    )
    return file_out(stored, runtime.settings.public_url)


async def _fingerprint(file: UploadFile) -> str:
    """Of the upload's name and bytes (not of the multipart body: its boundary is random)."""
    digest = hashlib.sha256((file.filename or "").encode() + b"\0")
    while chunk := await file.read(CHUNK_BYTES):
        digest.update(chunk)
    await file.seek(0)
    return fingerprint("uploadFile", digest.hexdigest().encode())
