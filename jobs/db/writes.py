"""Writes of what is not a job: file deletion, API keys and presets. Reads are in
`jobs.db.repository`; a job (and the files it writes) changes only through `jobs.store`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from jobs.db.repository import ApiKey, Preset, key_record, new_id, now, preset_record
from jobs.db.tables import ApiKeyRow, FileRow, PresetRow
from jobs.errors import ApiKeyNotFound, BadInput, PresetNotFound


async def mark_file_deleted(session: AsyncSession, file_id: str) -> None:
    """Its row stays (jobs keep their history); the caller removes the blob."""
    await session.execute(update(FileRow).where(FileRow.id == file_id).values(deleted_at=now()))


async def add_api_key(
    session: AsyncSession, *, name: str, key_hash: str, prefix: str, owner: str, admin: bool
) -> ApiKey:
    taken = await session.scalar(select(func.count()).where(ApiKeyRow.name == name))
    if taken:
        raise BadInput(f"an API key named {name!r} exists already")
    row = ApiKeyRow(
        id=new_id(),
        name=name,
        key_hash=key_hash,
        prefix=prefix,
        owner=owner,
        admin=admin,
        created_at=now(),
        revoked_at=None,
    )
    session.add(row)
    await session.flush()
    return key_record(row)


async def revoke_api_key(session: AsyncSession, id_or_name: str) -> ApiKey:
    row = (
        await session.scalars(
            select(ApiKeyRow).where(or_(ApiKeyRow.id == id_or_name, ApiKeyRow.name == id_or_name))
        )
    ).one_or_none()
    if row is None:
        raise ApiKeyNotFound(id_or_name)
    if row.revoked_at is None:
        row.revoked_at = now()
        await session.flush()
    return key_record(row)


async def set_key_webhook_url(session: AsyncSession, name: str, url: str | None) -> None:
    """Set (None: clear) the default webhook URL of live key `name`."""
    result = await session.execute(
        update(ApiKeyRow)
        .where(ApiKeyRow.name == name, ApiKeyRow.revoked_at.is_(None))
        .values(webhook_url=url)
    )
    if not getattr(result, "rowcount", 0):
        raise ApiKeyNotFound(name)


async def save_preset(
    session: AsyncSession, owner: str | None, name: str, effects: list[dict[str, Any]]
) -> Preset:
    """Create the preset, or replace the chain of the owner's preset of that name."""
    row = (
        await session.scalars(
            select(PresetRow).where(PresetRow.owner == (owner or ""), PresetRow.name == name)
        )
    ).one_or_none()
    at = now()
    if row is None:
        row = PresetRow(owner=owner or "", name=name, effects=effects, created_at=at, updated_at=at)
        session.add(row)
    else:
        row.effects = effects
        row.updated_at = at
    await session.flush()
    return preset_record(row)


async def delete_preset(session: AsyncSession, owner: str | None, name: str) -> None:
    result = await session.execute(
        delete(PresetRow).where(PresetRow.owner == (owner or ""), PresetRow.name == name)
    )
    if not getattr(result, "rowcount", 0):
        raise PresetNotFound(name)
