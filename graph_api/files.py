"""REST routes for audio blobs: download with Range support, and a plain multipart upload
for curl users (the GraphQL `uploadAudio` does the same). Both need an API key (unless
authentication is off); another owner's file is 404, exactly like an unknown one."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, File, Request, UploadFile
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from graph_api.auth import Principal
from graph_api.context import get_principal, get_runtime
from graph_api.downloads import content_disposition, stream_blob
from graph_api.runtime import Runtime
from graph_api.uploads import store_upload
from jobs.db import repository as repo
from jobs.formats import media_type
from jobs.models import AudioFile

router = APIRouter(tags=["files"])


def download_url(public_url: str, file_id: str) -> str:
    """Where `GET /files/{id}` serves a file, as both the REST and the GraphQL shapes say."""
    return f"{public_url.rstrip('/')}/files/{file_id}"


class AudioFileOut(BaseModel):
    """The same fields as GraphQL's `AudioFile`, in the same camelCase."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    id: str
    filename: str
    format: str
    subtype: str
    sample_rate: int
    channels: int
    frames: int
    duration_seconds: float
    size_bytes: int
    download_url: str
    created_at: datetime

    @classmethod
    def of(cls, file: AudioFile, public_url: str) -> AudioFileOut:
        return cls(
            id=file.id,
            filename=file.filename,
            format=file.format,
            subtype=file.subtype,
            sample_rate=file.sample_rate,
            channels=file.channels,
            frames=file.frames,
            duration_seconds=file.duration_seconds,
            size_bytes=file.size_bytes,
            download_url=download_url(public_url, file.id),
            created_at=file.created_at,
        )


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
    async with runtime.db.transaction() as session:
        file = await repo.visible_file(session, file_id, principal.scope)
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
) -> AudioFileOut:
    """Store an audio file:
    `curl -F file=@a.wav -H 'Authorization: Bearer ae_...' HOST/files`."""
    stored = await store_upload(runtime, file, principal.owner)
    return AudioFileOut.of(stored, runtime.settings.public_url)
