"""Webhook signing secrets, encrypted at rest with the server key.

Standard Webhooks signs with HMAC-SHA256 under the secret itself, so it cannot be stored as a
hash like an API key: it is stored encrypted (Fernet: AES-128-CBC + HMAC) under a server key,
`Settings.secret_key`, or when that is empty the key in `data_dir/secret.key`, written on
first start (mode 0600, created exclusively, so an API and a bridge starting together agree
on one). The key and the secrets are never logged; a secret is shown once, by
`rotateWebhookSecret`.

>>> secret = await rotate_secret(db, fernet, "alice")     # doctest: +SKIP
>>> secret.startswith("whsec_")                          # doctest: +SKIP
True
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import Connection, Table, bindparam, delete, insert, select

from jobs.db import Database
from jobs.db.repository import now
from jobs.db.tables import WebhookSecretRow
from jobs.errors import BadInput, EngineError
from jobs.settings import Settings

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
KEY_FILE = "secret.key"

_secrets: Table = WebhookSecretRow.__table__  # type: ignore[assignment]
_GET = select(_secrets.c.secret).where(_secrets.c.owner == bindparam("b_owner"))
_DROP = delete(_secrets).where(_secrets.c.owner == bindparam("b_owner"))
_PUT = insert(_secrets)


class KeyringError(EngineError):
    """The server key is unusable, or does not open a stored secret (it changed)."""

    code = "CONFIGURATION"


def server_key(settings: Settings) -> Fernet:
    """The Fernet of `settings.secret_key`, or of `data_dir/secret.key` (made if missing)."""
    given = settings.secret_key.get_secret_value().strip()
    if not given:
        given = _key_file(settings.data_dir / KEY_FILE)
    try:
        return Fernet(given.encode())
    except ValueError:
        raise KeyringError(
            "AUDIO_ENGINE_SECRET_KEY is not a Fernet key (32 url-safe base64 bytes): make one "
            'with python -c "from cryptography.fernet import Fernet; '
            'print(Fernet.generate_key().decode())"'
        ) from None


def _key_file(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(Fernet.generate_key())
    # A concurrent creator may not have written yet: an empty read is retried by the caller's
    # next start at worst, but reading right after its exclusive create sees 44 bytes.
    return path.read_text().strip()


def owner_key(owner: str | None) -> str:
    return owner or ""


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def _replace(conn: Connection, owner: str, token: bytes) -> None:
    conn.execute(_DROP, {"b_owner": owner})
    conn.execute(_PUT, {"owner": owner, "secret": token, "created_at": now()})


async def rotate_secret(db: Database, fernet: Fernet, owner: str | None) -> str:
    """A new secret for `owner`, replacing the old at once; returned in clear, once."""
    secret = new_secret()
    await db.run(_replace, owner_key(owner), fernet.encrypt(secret.encode()))
    return secret


def stored_secret(conn: Connection, fernet: Fernet, owner: str | None) -> str | None:
    """`owner`'s secret in clear, None if they never made one."""
    token = conn.scalar(_GET, {"b_owner": owner_key(owner)})
    if token is None:
        return None
    try:
        return fernet.decrypt(bytes(token)).decode()
    except InvalidToken:
        raise KeyringError(
            "a webhook secret does not decrypt with the server key: AUDIO_ENGINE_SECRET_KEY "
            "(or data_dir/secret.key) changed; rotate the secret"
        ) from None


def has_secret(conn: Connection, owner: str | None) -> bool:
    return conn.scalar(_GET, {"b_owner": owner_key(owner)}) is not None


def require_secret(conn: Connection, owner: str | None) -> None:
    """`BadInput` unless `owner` has a secret to sign webhooks with."""
    if not has_secret(conn, owner):
        raise BadInput("webhookUrl: call rotateWebhookSecret first, to get the signing secret")
