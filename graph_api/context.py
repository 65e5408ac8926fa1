"""The per-request (or per-websocket) GraphQL context: the process runtime plus loaders."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import Depends
from starlette.requests import HTTPConnection
from strawberry.dataloader import DataLoader
from strawberry.fastapi import BaseContext

from graph_api.runtime import Runtime
from jobs.db import repository as repo
from jobs.models import AudioFile, Job


class Context(BaseContext):
    def __init__(self, runtime: Runtime) -> None:
        super().__init__()
        self.runtime = runtime
        # Files never change once stored, so one cache per request or connection is safe.
        self.files: DataLoader[str, AudioFile | None] = DataLoader(load_fn=self._load_files)

    async def _load_files(self, ids: Sequence[str]) -> list[AudioFile | None]:
        async with self.runtime.db.transaction() as session:
            found = await repo.get_files(session, list(ids))
        return [found.get(i) for i in ids]

    async def job(self, job_id: str) -> Job:
        """The job as stored now (jobs change, so this is never cached)."""
        async with self.runtime.db.transaction() as session:
            return await repo.get_job(session, job_id)


def get_runtime(connection: HTTPConnection) -> Runtime:
    runtime: Runtime = connection.app.state.runtime
    return runtime


async def get_context(runtime: Runtime = Depends(get_runtime)) -> Context:  # noqa: B008
    return Context(runtime)
