"""The per-request (or per-websocket) GraphQL context: the process runtime, the caller, and
owner-aware loaders. Whatever belongs to another owner is reported exactly like what does not
exist (`NOT_FOUND` / null), so ids of other owners' things cannot be probed."""

from __future__ import annotations

import time
from collections.abc import Sequence

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection
from strawberry.dataloader import DataLoader
from strawberry.fastapi import BaseContext

from graph_api.auth import NOBODY, Principal, authenticate, bearer, key_from_params
from graph_api.gate import PRINCIPAL
from graph_api.runtime import Runtime
from jobs.db import repository as repo
from jobs.errors import BatchNotFound, JobNotFound, Unauthenticated
from jobs.models import AudioFile, Batch, Job

IDEMPOTENCY_KEY = "Idempotency-Key"
"""The request header of `graph_api.idempotency`."""


class Context(BaseContext):
    def __init__(
        self,
        runtime: Runtime,
        authorization: str | None = None,
        principal: Principal | None = None,
        idempotency_key: str | None = None,
    ) -> None:
        super().__init__()
        self.runtime = runtime
        self.authorization = authorization
        self.idempotency_key = idempotency_key
        # Found already by `graph_api.gate` for an HTTP request.
        self._principal: Principal | None = principal
        self._checked_at = time.monotonic()
        # Files never change once stored, so one cache per request or connection is safe.
        # Unfiltered: only for files reached through a job the caller may see.
        self.files: DataLoader[str, AudioFile | None] = DataLoader(load_fn=self._load_files)

    async def _load_files(self, ids: Sequence[str]) -> list[AudioFile | None]:
        async with self.runtime.db.transaction() as session:
            found = await repo.get_files(session, list(ids))
        return [found.get(i) for i in ids]

    async def principal(self) -> Principal:
        """The caller; `Unauthenticated` without a live key (unless authentication is off).
        On a websocket the `connection_init` payload wins over the handshake header. Asked
        of the database now (no earlier answer is taken), in one lookup with whoever asks
        about the same key meanwhile: a thousand websockets of one key connecting at once
        do not queue a thousand lookups."""
        if self._principal is None:
            if not self.runtime.settings.auth_enabled:
                self._principal = NOBODY
            else:
                key = key_from_params(self.connection_params) or bearer(self.authorization)
                self._checked_at, self._principal = await self.runtime.key_checks.recheck(
                    key, time.monotonic(), self.runtime.settings.key_recheck_s
                )
        return self._principal

    def authenticated_recently(self) -> bool:
        """Whether `still_authenticated` would return at once, its database visit not due."""
        if self._principal is None or self._principal is NOBODY:
            return True
        return time.monotonic() - self._checked_at < self.runtime.settings.key_recheck_s

    async def still_authenticated(self) -> None:
        """For what outlives a request (a subscription): `Unauthenticated` once the caller's
        key is revoked, asked of the database at most every `Settings.key_recheck_s`."""
        if self._principal is None or self._principal is NOBODY:
            return
        max_age = self.runtime.settings.key_recheck_s
        if time.monotonic() - self._checked_at < max_age:
            return
        key = key_from_params(self.connection_params) or bearer(self.authorization)
        try:
            self._checked_at, self._principal = await self.runtime.key_checks.recheck(
                key, self._checked_at, max_age
            )
        except Unauthenticated:
            self._principal = None
            raise

    async def job(self, job_id: str) -> Job:
        """The job as stored now (jobs change, so this is never cached); `JobNotFound` when
        it is another owner's."""
        principal = await self.principal()
        async with self.runtime.db.transaction() as session:
            job = await repo.get_job(session, job_id)
        if not principal.may_see(job.owner):
            raise JobNotFound(job_id)
        return job

    async def batch(self, batch_id: str) -> Batch:
        """The batch as stored now; `BatchNotFound` when it is another owner's."""
        principal = await self.principal()
        async with self.runtime.db.transaction() as session:
            batch = await repo.get_batch(session, batch_id)
        if not principal.may_see(batch.owner):
            raise BatchNotFound(batch_id)
        return batch

    async def file(self, file_id: str) -> AudioFile:
        """A live file the caller may see (its own, or the output of its job)."""
        principal = await self.principal()
        return await self.runtime.db.run(repo.visible_file, file_id, principal.scope)


async def get_runtime(connection: HTTPConnection) -> Runtime:
    # async on purpose: FastAPI runs a plain `def` dependency on a worker thread, a thread
    # round trip per request for an attribute lookup.
    runtime: Runtime = connection.app.state.runtime
    return runtime


async def get_context(
    connection: HTTPConnection,
    runtime: Runtime = Depends(get_runtime),  # noqa: B008
) -> Context:
    state = connection.scope.get("state") or {}
    headers = connection.headers
    return Context(
        runtime,
        headers.get("authorization"),
        state.get(PRINCIPAL),
        headers.get(IDEMPOTENCY_KEY),
    )


_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key: `Authorization: Bearer ae_...` (`audio-engine keys create`).",
)


async def get_principal(
    runtime: Runtime = Depends(get_runtime),  # noqa: B008
    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),  # noqa: B008
) -> Principal:
    """The caller of a REST route; `Unauthenticated` (401) without a live key."""
    if not runtime.settings.auth_enabled:
        return NOBODY
    return await authenticate(runtime.db, credentials.credentials if credentials else None)
