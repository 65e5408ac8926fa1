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
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.alias_generators import to_camel

from jobs.models import AudioFile

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
