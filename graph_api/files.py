"""REST routes for audio blobs: download with Range support, and a plain multipart upload
for curl users (the GraphQL `uploadAudio` does the same)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, File, UploadFile
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from graph_api.context import get_runtime
from graph_api.runtime import Runtime
from graph_api.uploads import store_upload
from jobs.db import repository as repo
from jobs.errors import FileNotFound
from jobs.formats import media_type
from jobs.models import AudioFile

router = APIRouter(tags=["files"])


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
            download_url=f"{public_url.rstrip('/')}/files/{file.id}",
            created_at=file.created_at,
        )


class ErrorOut(BaseModel):
    code: str
    message: str


@router.get(
    "/files/{file_id}",
    response_class=FileResponse,
    responses={
        200: {"content": {"audio/*": {}}, "description": "The whole file."},
        206: {"content": {"audio/*": {}}, "description": "The requested byte range."},
        404: {"model": ErrorOut, "description": "No such file."},
    },
)
async def download_file(file_id: str, runtime: Runtime = Depends(get_runtime)) -> FileResponse:  # noqa: B008
    """Stream a stored file as an attachment; honours `Range: bytes=...`."""
    async with runtime.db.transaction() as session:
        file = await repo.get_file(session, file_id)
    path = runtime.storage.path(file.storage_key)
    if not path.is_file():
        raise FileNotFound(file_id)
    return FileResponse(path, media_type=media_type(file.format), filename=file.filename)


@router.post(
    "/files",
    status_code=201,
    response_model=AudioFileOut,
    responses={
        413: {"model": ErrorOut, "description": "Larger than max_upload_bytes."},
        415: {"model": ErrorOut, "description": "Not decodable audio."},
    },
)
async def upload_file(
    file: UploadFile = File(..., description="The audio file."),  # noqa: B008
    runtime: Runtime = Depends(get_runtime),  # noqa: B008
) -> AudioFileOut:
    """Store an audio file: `curl -F file=@a.wav -H 'X-Requested-With: curl' HOST/files`."""
    stored = await store_upload(runtime, file)
    return AudioFileOut.of(stored, runtime.settings.public_url)
