"""The wire shapes of a domain record (API, webhooks), generated from the record itself.

A record's fields are written once, in its frozen dataclass (`jobs.models`; its table holds
the same names). The REST shape is a pydantic model made from the dataclass's public fields
(`public_model`), and GraphQL's type is generated from that model by Strawberry's pydantic
integration (`graph_api.types`), descriptions included: a field added to the record shows
up in both. A generator rather than declaring the records in pydantic: the dataclasses are
what the hot path (the store, the bridge) builds by the thousand, cheaply.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.alias_generators import to_camel

from jobs.errors import without_paths
from jobs.models import AudioFile, Batch, Job, batch_progress

FILE_INTERNALS = frozenset({"storage_key", "role", "owner"})
"""AudioFile fields the API never shows: where the blob is, and whose it is."""


def download_url(public_url: str, file_id: str) -> str:
    """Where `GET /files/{id}` serves a file, as both the REST and the GraphQL shapes say."""
    return f"{public_url.rstrip('/')}/files/{file_id}"


class Shape(BaseModel):
    """Base of the generated shapes: camelCase on the wire, like GraphQL."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


def public_model(
    record: type[Any], name: str, hidden: frozenset[str], **extra: tuple[Any, Any]
) -> type[Shape]:
    """A pydantic model of `record`'s fields but `hidden`, in order, with each field's
    `description` metadata, then `extra` (name: (type, pydantic Field))."""
    hints = typing.get_type_hints(record)
    fields: dict[str, Any] = {
        f.name: (hints[f.name], Field(description=f.metadata.get("description")))
        for f in dataclasses.fields(record)
        if f.name not in hidden
    }
    fields.update(extra)
    return create_model(name, __base__=Shape, **fields)


AudioFileOut = public_model(
    AudioFile,
    "AudioFileOut",
    FILE_INTERNALS,
    duration_seconds=(float, Field()),
    download_url=(str, Field()),
)


def file_out(file: AudioFile, public_url: str) -> Shape:
    """The REST (and GraphQL) shape of a stored file."""
    values = {"download_url": download_url(public_url, file.id)}
    values.update({n: getattr(file, n) for n in AudioFileOut.model_fields if n not in values})
    return AudioFileOut(**values)


def job_out(job: Job, files: dict[str, AudioFile], public_url: str) -> dict[str, Any]:
    """A job as GraphQL's `Job` shows it (its scalar fields, files with their download
    URLs), in JSON: the `data` of its webhook. A test compares the two."""

    def file(file_id: str | None) -> dict[str, Any] | None:
        found = files.get(file_id or "")
        if found is None:
            return None
        shape: dict[str, Any] = file_out(found, public_url).model_dump(by_alias=True)
        # GraphQL's DateTime is `isoformat()` ("+00:00"), not pydantic's JSON ("Z").
        return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in shape.items()}

    error = None
    if job.error_code is not None:
        error = {"code": job.error_code, "message": without_paths(job.error_message or "")}
    compliance = None
    if job.compliance is not None:
        compliance = {to_camel(k): v for k, v in job.compliance.model_dump(mode="json").items()}

    def stamp(at: datetime | None) -> str | None:
        return None if at is None else at.isoformat()

    return {
        "id": job.id,
        "status": job.status.value,
        "progress": job.progress,
        "effects": job.effects,
        "outputFormat": job.output_format,
        "outputSubtype": job.output_subtype,
        "message": without_paths(job.message),
        "attempts": job.attempts,
        "createdAt": stamp(job.created_at),
        "startedAt": stamp(job.started_at),
        "finishedAt": stamp(job.finished_at),
        "input": file(job.input_file_id),
        "output": file(job.output_file_id),
        "compliance": compliance,
        "edits": [{"startS": start, "endS": end} for start, end in job.edits],
        "error": error,
    }


def batch_out(
    batch: Batch, jobs: list[Job], files: dict[str, AudioFile], public_url: str
) -> dict[str, Any]:
    """A batch as GraphQL's `Batch` shows it, its jobs as `job_out` does: the `data` of its
    `batch.completed` webhook."""
    return {
        "id": batch.id,
        "status": batch.status.value,
        "progress": batch_progress(jobs),
        "album": batch.album,
        "albumLoudnessLufs": batch.album_lufs
        if batch.album_lufs is not None and math.isfinite(batch.album_lufs)
        else None,
        "createdAt": batch.created_at.isoformat(),
        "finishedAt": None if batch.finished_at is None else batch.finished_at.isoformat(),
        "jobs": [job_out(job, files, public_url) for job in jobs],
    }
