"""Idempotent requests (IETF draft "The Idempotency-Key HTTP Header Field").

A request carrying a key first claims it for its owner, with a fingerprint of what it asks
for; then it makes its thing and records the id of what it made. The same key with the same
fingerprint within `KEEP_S` gets that id back, and the caller returns the thing instead of
making another; a different fingerprint, or a claim whose first request has not finished, is
`IdempotencyConflict` (CONFLICT). A request that fails gives its claim back, so the key may be
used again. Keys of different owners never meet. Run each function through `Database.run`.

>>> fingerprint("submitJob", {"fileId": "f1", "effects": [{"gain": {"db": -3}}]})[:12]
'5f400a1669dc'
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Connection, Table, and_, delete, insert, select, update

from jobs.db.tables import IdempotencyKeyRow
from jobs.errors import BadInput, IdempotencyConflict

KEEP_S = 24 * 3600.0
"""How long a key is remembered."""
MAX_KEY = 255

_keys = cast(Table, IdempotencyKeyRow.__table__)


def fingerprint(operation: str, request: Any) -> str:
    """sha256 of an operation and its request (bytes as they are; anything else as JSON,
    what JSON cannot hold as its `str`)."""
    if isinstance(request, bytes):
        body = request
    else:
        body = json.dumps(request, sort_keys=True, default=str).encode()
    return hashlib.sha256(operation.encode() + b"\0" + body).hexdigest()


def check_key(key: str) -> str:
    """`BAD_INPUT` for a key no client should send (empty, too long, not printable ASCII)."""
    if not 1 <= len(key) <= MAX_KEY or not key.isascii() or not key.isprintable():
        raise BadInput(f"Idempotency-Key must be 1 to {MAX_KEY} printable ASCII characters")
    return key


def _where(owner: str | None, key: str) -> Any:
    return and_(_keys.c.owner == (owner or ""), _keys.c.key == key)


def claim(
    conn: Connection, owner: str | None, key: str, operation: str, print_: str, at: datetime
) -> str | None:
    """None: the key is now this request's, go ahead. Else the id its first request made.
    Raises `IdempotencyConflict` for another request under the key, or one still running;
    an `IntegrityError` when another request claimed it in between (claim again)."""
    conn.execute(delete(_keys).where(_where(owner, key), _keys.c.created_at < at - _keep()))
    row = conn.execute(
        select(_keys.c.operation, _keys.c.fingerprint, _keys.c.result_id).where(_where(owner, key))
    ).one_or_none()
    if row is None:
        conn.execute(
            insert(_keys).values(
                owner=owner or "",
                key=key,
                operation=operation,
                fingerprint=print_,
                result_id=None,
                created_at=at,
            )
        )
        return None
    if (row[0], row[1]) != (operation, print_):
        raise IdempotencyConflict(
            "this Idempotency-Key was used for a different request in the last 24 h: use a "
            "new key for a new request"
        )
    if row[2] is None:
        raise IdempotencyConflict(
            "the first request with this Idempotency-Key is still being processed: retry later"
        )
    return str(row[2])


def settle(conn: Connection, owner: str | None, key: str, result_id: str) -> None:
    """Record what the request that claimed `key` made."""
    conn.execute(update(_keys).where(_where(owner, key)).values(result_id=result_id))


def release(conn: Connection, owner: str | None, key: str) -> None:
    """Give back the claim of a request that failed: the key may be used again."""
    conn.execute(delete(_keys).where(_where(owner, key), _keys.c.result_id.is_(None)))


def _keep() -> timedelta:
    return timedelta(seconds=KEEP_S)
