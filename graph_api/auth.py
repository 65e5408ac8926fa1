"""API keys: who is calling, and what they may see.

A key is `ae_` plus 32 random bytes (url-safe base64); only its sha256 is stored, so a
database leak reveals no key. Keys are made and revoked with `audio-engine keys ...`; on the
first start with no key at all, the API makes an admin key and prints it once
(`ensure_first_key`).

The key travels as `Authorization: Bearer ae_...` over HTTP, and in the graphql-transport-ws
`connection_init` payload for subscriptions (`{"Authorization": "Bearer ae_..."}`,
`{"authorization": ...}` or `{"apiKey": "ae_..."}`).

>>> key, record = await create_key(db, name="ci", admin=False)   # doctest: +SKIP
>>> (await authenticate(db, key)).owner                          # doctest: +SKIP
'ci'
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass

from jobs.db import Database, writes
from jobs.db import repository as repo
from jobs.errors import BadInput, Unauthenticated
from jobs.settings import Settings

log = logging.getLogger(__name__)

KEY_PREFIX = "ae_"
SHOWN_CHARS = 10  # of a key, in listings: the prefix plus a few characters
FIRST_KEY_NAME = "admin"


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller. `owner` is stamped on what they create; admins (and everyone when
    authentication is off) see everything."""

    owner: str | None
    admin: bool = False
    key_name: str | None = None
    webhook_url: str | None = None
    """The key's default webhook URL, for jobs submitted without `webhookUrl`."""

    @property
    def scope(self) -> str | None:
        """The owner to filter by, or None for "everything"."""
        return None if self.admin else self.owner

    def may_see(self, owner: str | None) -> bool:
        return self.admin or owner == self.owner


# Authentication off (`--dev`): no owner, everything visible.
NOBODY = Principal(owner=None, admin=True)


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def bearer(value: object) -> str | None:
    """The credential of an `Authorization: Bearer <key>` value (a bare key also passes)."""
    if not isinstance(value, str):
        return None
    scheme, _, rest = value.strip().partition(" ")
    if rest and scheme.lower() == "bearer":
        return rest.strip() or None
    return value.strip() or None if not rest else None


def key_from_params(params: object) -> str | None:
    """The key in a websocket `connection_init` payload, if any."""
    if not isinstance(params, Mapping):
        return None
    for name in ("Authorization", "authorization"):
        if name in params:
            return bearer(params[name])
    return bearer(params.get("apiKey"))


async def authenticate(db: Database, key: str | None) -> Principal:
    """The principal of a live key; `Unauthenticated` for none, an unknown or a revoked one."""
    if not key:
        raise Unauthenticated(
            "an API key is required: send the header 'Authorization: Bearer ae_...'"
        )
    digest = hash_key(key)
    async with db.transaction() as session:
        found = await repo.api_key_by_hash(session, digest)
    if found is None or not hmac.compare_digest(found[1], digest):
        raise Unauthenticated("the API key is unknown or revoked")
    record = found[0]
    return Principal(
        owner=record.owner, admin=record.admin, key_name=record.name, webhook_url=record.webhook_url
    )


class KeyChecks:
    """Re-checks of live keys, shared by every subscription holding the same key: a thousand
    open subscriptions of one key ask the database once per interval, not a thousand times
    (on SQLite they all queue on one connection). A caller takes a shared answer only if it
    is younger than `max_age_s` and newer than its own last one, so a revoked key still
    ends each subscription within its interval."""

    KEPT = 10_000

    def __init__(self, db: Database) -> None:
        self.db = db
        self.lookups = 0
        self._latest: dict[str, tuple[float, Principal | Unauthenticated]] = {}
        self._running: dict[str, asyncio.Task[tuple[float, Principal | Unauthenticated]]] = {}

    async def recheck(
        self, key: str | None, newer_than: float, max_age_s: float
    ) -> tuple[float, Principal]:
        """(monotonic time of the check, principal) for `key`; `Unauthenticated` if it is
        revoked or unknown. A lookup already running is joined whatever `newer_than`: it
        reads the database now."""
        slot = hash_key(key) if key else ""
        latest = self._latest.get(slot)
        if latest is None or latest[0] <= newer_than or time.monotonic() - latest[0] >= max_age_s:
            task = self._running.get(slot)
            if task is None:
                task = asyncio.create_task(self._lookup(slot, key))
                self._running[slot] = task
            latest = await asyncio.shield(task)
        at, found = latest
        if isinstance(found, Unauthenticated):
            raise Unauthenticated(found.message)
        return at, found

    async def _lookup(
        self, slot: str, key: str | None
    ) -> tuple[float, Principal | Unauthenticated]:
        at = time.monotonic()
        try:
            self.lookups += 1
            found: Principal | Unauthenticated = await authenticate(self.db, key)
        except Unauthenticated as exc:
            found = exc
        finally:
            del self._running[slot]
        if len(self._latest) >= self.KEPT:
            self._latest.clear()
        self._latest[slot] = (at, found)
        return at, found


async def create_key(
    db: Database, *, name: str, admin: bool = False, owner: str | None = None
) -> tuple[str, repo.ApiKey]:
    """Make a key; returns it (the only time it exists in clear) and its stored record.
    The owner defaults to the key's name, so give two keys one owner to share data."""
    name = name.strip()
    if not name or len(name) > 100 or not name.isprintable():
        raise BadInput("a key name is 1 to 100 printable characters")
    owner = (owner or name).strip()
    if not owner or len(owner) > 64 or not owner.isprintable():
        raise BadInput("an owner is 1 to 64 printable characters")
    key = new_key()
    async with db.transaction() as session:
        record = await writes.add_api_key(
            session,
            name=name,
            key_hash=hash_key(key),
            prefix=key[:SHOWN_CHARS],
            owner=owner,
            admin=admin,
        )
    return key, record


async def ensure_first_key(db: Database) -> str | None:
    """On a database that never had a key, make an admin key and return it (else None)."""
    async with db.transaction() as session:
        if await repo.count_api_keys(session):
            return None
    key, _ = await create_key(db, name=FIRST_KEY_NAME, admin=True)
    return key


def first_key_banner(key: str, settings: Settings) -> str:
    base = settings.public_url.rstrip("/") or f"http://{settings.api_host}:{settings.api_port}"
    line = "=" * 78
    return f"""{line}
No API key existed, so an ADMIN key was created. It is shown ONCE; only its hash is stored.

    {key}

GraphiQL ({base}/graphql): paste into the Headers pane:
    {{"Authorization": "Bearer {key}"}}
curl:
    curl -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\
      -d '{{"query": "{{ jobs {{ edges {{ node {{ id status }} }} }} }}"}}' {base}/graphql
More keys: audio-engine keys create --name NAME [--admin]; revoke: audio-engine keys revoke NAME
{line}"""
