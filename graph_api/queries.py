"""Read-only root fields."""

# Strawberry types its decorators-with-arguments as returning Any.
# mypy: disable-error-code="untyped-decorator"

from __future__ import annotations

import strawberry
from strawberry.types import Info

from graph_api.catalog import CATALOG
from graph_api.context import Context
from graph_api.types import (
    AudioFile,
    EffectDescription,
    Job,
    JobConnection,
    JobEdge,
    JobStatus,
    PageInfo,
)
from jobs.db import repository as repo
from jobs.errors import BadInput, NotFound
from jobs.states import JobStatus as _JobStatus

MAX_PAGE = 100


@strawberry.type
class Query:
    @strawberry.field(description="A job by id, null if there is none.")
    async def job(self, info: Info[Context, None], id: strawberry.ID) -> Job | None:
        try:
            return Job.of(await info.context.job(id))
        except NotFound:
            return None

    @strawberry.field(description="Jobs newest first, `first` at a time (at most 100).")
    async def jobs(
        self,
        info: Info[Context, None],
        first: int = 20,
        after: str | None = None,
        status: JobStatus | None = None,
    ) -> JobConnection:
        if not 1 <= first <= MAX_PAGE:
            raise BadInput(f"first must be between 1 and {MAX_PAGE}, got {first}")
        async with info.context.runtime.db.transaction() as session:
            page, more = await repo.list_jobs(
                session,
                first=first,
                after=after,
                status=_JobStatus(status) if status is not None else None,
            )
        edges = [JobEdge(cursor=repo.encode_cursor(j), node=Job.of(j)) for j in page]
        return JobConnection(
            edges=edges,
            page_info=PageInfo(has_next_page=more, end_cursor=edges[-1].cursor if edges else None),
        )

    @strawberry.field(description="A stored file by id, null if there is none.")
    async def file(self, info: Info[Context, None], id: strawberry.ID) -> AudioFile | None:
        found = await info.context.files.load(id)
        if found is None:
            return None
        return AudioFile.of(found, info.context.runtime.settings.public_url)

    @strawberry.field(description="Every effect with its parameters, units, ranges, defaults.")
    def effects(self) -> list[EffectDescription]:
        return list(CATALOG)
