"""The `Idempotency-Key` header on the mutations that make things (`submitJob`,
`submitBatch`, `importAudio`) and on `POST /files`: see `jobs.idempotency`.

A replay returns what the first request made, as it is now (a job may have run since).

>>> job = await idempotent(runtime, owner, key, "submitJob", print_, make, replay)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from sqlalchemy.exc import IntegrityError

from graph_api.runtime import Runtime
from jobs import idempotency
from jobs.db import repository as repo


class Made(Protocol):
    @property
    def id(self) -> str: ...


T = TypeVar("T", bound=Made)


async def idempotent(
    runtime: Runtime,
    owner: str | None,
    key: str | None,
    operation: str,
    print_: str,
    make: Callable[[], Awaitable[T]],
    replay: Callable[[str], Awaitable[T]],
) -> T:
    """`make()`, unless `key` (None: no header) was used for the same request by `owner`
    within 24 h: then `replay(id of what it made)`. `CONFLICT` for the key of a different
    request, or of one still running."""
    if key is None:
        return await make()
    idempotency.check_key(key)
    for last in (False, True):
        try:
            made = await runtime.db.run(
                idempotency.claim, owner, key, operation, print_, repo.now()
            )
            break
        except IntegrityError:  # claimed in between by a twin request: read its claim
            if last:
                raise
    if made is not None:
        return await replay(made)
    try:
        result = await make()
    except BaseException:
        await runtime.db.run(idempotency.release, owner, key)
        raise
    await runtime.db.run(idempotency.settle, owner, key, str(result.id))
    return result
