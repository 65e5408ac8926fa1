"""Read-only root fields. Each needs an API key (unless authentication is off) and shows only
the caller's own things (admins: everything); another owner's id reads as unknown (null)."""

# Strawberry types its decorators-with-arguments as returning Any.
# mypy: disable-error-code="untyped-decorator"

from __future__ import annotations

import strawberry
from strawberry.types import Info

from graph_api.catalog import CATALOG
from graph_api.context import Context
from graph_api.inputs import JobFilter
from graph_api.permissions import AUTHENTICATED
from graph_api.types import (
    AudioFile,
    Batch,
    BatchConnection,
    BatchEdge,
    EffectDescription,
    Job,
    JobConnection,
    JobEdge,
    JobStatus,
    PageInfo,
    Preset,
    Viewer,
    file_of,
)
from jobs.db import repository as repo
from jobs.errors import BadInput, NotFound
from jobs.states import JobStatus as _JobStatus

MAX_PAGE = 100


def _page_size(first: int) -> None:
    if not 1 <= first <= MAX_PAGE:
        raise BadInput(f"first must be between 1 and {MAX_PAGE}, got {first}")


@strawberry.type
class Query:
    @strawberry.field(
        description="A job by id; null if there is none or it is not yours.",
        permission_classes=AUTHENTICATED,
    )
    async def job(self, info: Info[Context, None], id: strawberry.ID) -> Job | None:
        try:
            return Job.of(await info.context.job(id))
        except NotFound:
            return None

    @strawberry.field(
        description="Your jobs (admins: all) newest first, `first` at a time (at most 100). "
        "`status` is the older spelling of `filter.status`.",
        permission_classes=AUTHENTICATED,
    )
    async def jobs(
        self,
        info: Info[Context, None],
        filter: JobFilter | None = None,
        first: int = 20,
        after: str | None = None,
        status: JobStatus | None = None,
    ) -> JobConnection:
        _page_size(first)
        wanted = filter.status if filter is not None else None
        if wanted is not None and status is not None and wanted != status:
            raise BadInput("status and filter.status disagree: give one of them")
        wanted = wanted if wanted is not None else status
        principal = await info.context.principal()
        async with info.context.runtime.db.transaction() as session:
            page, more = await repo.list_jobs(
                session,
                first=first,
                after=after,
                status=_JobStatus(wanted) if wanted is not None else None,
                owner=principal.scope,
            )
        edges = [JobEdge(cursor=repo.encode_cursor(j), node=Job.of(j)) for j in page]
        return JobConnection(
            edges=edges,
            page_info=PageInfo(has_next_page=more, end_cursor=edges[-1].cursor if edges else None),
        )

    @strawberry.field(
        description="A batch by id; null if there is none or it is not yours.",
        permission_classes=AUTHENTICATED,
    )
    async def batch(self, info: Info[Context, None], id: strawberry.ID) -> Batch | None:
        try:
            return Batch.of(await info.context.batch(id))
        except NotFound:
            return None

    @strawberry.field(
        description="Your batches (admins: all) newest first, `first` at a time (at most 100).",
        permission_classes=AUTHENTICATED,
    )
    async def batches(
        self, info: Info[Context, None], first: int = 20, after: str | None = None
    ) -> BatchConnection:
        _page_size(first)
        principal = await info.context.principal()
        async with info.context.runtime.db.transaction() as session:
            page, more = await repo.list_batches(
                session, first=first, after=after, owner=principal.scope
            )
        edges = [BatchEdge(cursor=repo.encode_cursor(b), node=Batch.of(b)) for b in page]
        return BatchConnection(
            edges=edges,
            page_info=PageInfo(has_next_page=more, end_cursor=edges[-1].cursor if edges else None),
        )

    @strawberry.field(
        description="A stored file by id; null if there is none, it was deleted, or it is "
        "not yours.",
        permission_classes=AUTHENTICATED,
    )
    async def file(self, info: Info[Context, None], id: strawberry.ID) -> AudioFile | None:
        try:
            found = await info.context.file(id)
        except NotFound:
            return None
        return file_of(found, info.context.runtime.settings.public_url)

    @strawberry.field(
        description="Every effect with its parameters, units, ranges, defaults.",
        permission_classes=AUTHENTICATED,
    )
    def effects(self) -> list[EffectDescription]:
        return list(CATALOG)

    @strawberry.field(description="Your presets, by name.", permission_classes=AUTHENTICATED)
    async def presets(self, info: Info[Context, None]) -> list[Preset]:
        principal = await info.context.principal()
        async with info.context.runtime.db.transaction() as session:
            found = await repo.list_presets(session, principal.owner)
        return [Preset.of(p) for p in found]

    @strawberry.field(description="The caller's identity.", permission_classes=AUTHENTICATED)
    async def viewer(self, info: Info[Context, None]) -> Viewer:
        principal = await info.context.principal()
        return Viewer.of(principal)
