"""`audio-engine keys create|list|revoke`: API keys, on the database the settings name.

audio-engine keys create --name alice            # prints the key once; only its hash is kept
audio-engine keys create --name ops --admin      # sees and manages everyone's files and jobs
audio-engine keys list [--json]
audio-engine keys revoke alice                   # by name or id; takes effect at once
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import asdict
from datetime import datetime

from cli import exits
from graph_api.auth import create_key
from jobs.db import Database, writes
from jobs.db import repository as repo
from jobs.effects import camel
from jobs.errors import EngineError
from jobs.settings import Settings


def run(settings: Settings, action: str, **options: object) -> int:
    try:
        return asyncio.run(_run(settings, action, **options))
    except EngineError as exc:
        print(f"audio-engine keys: {exc.code}: {exc.message}", file=sys.stderr)
        return exits.for_error(exc)


async def _run(settings: Settings, action: str, **options: object) -> int:
    db = Database(settings.sqlalchemy_url)
    try:
        await db.migrate()
        if action == "create":
            owner = options.get("owner")
            key, record = await create_key(
                db,
                name=str(options["name"]),
                admin=bool(options.get("admin")),
                owner=str(owner) if owner else None,
            )
            if options.get("as_json"):
                print(json.dumps({"key": key, **_key_record(record)}))
                return 0
            role = "admin " if record.admin else ""
            print(f"created {role}key {record.name!r} (id {record.id}, owner {record.owner!r}).")
            print("It is shown this once; only its hash is stored:\n")
            print(f"    {key}\n")
            print(f"Use it as the header  Authorization: Bearer {key}")
            return 0
        if action == "list":
            async with db.transaction() as session:
                keys = await repo.list_api_keys(session)
            if options.get("as_json"):
                print(json.dumps([_key_record(k) for k in keys]))
                return 0
            print(f"{'ID':32}  {'NAME':20} {'OWNER':20} {'PREFIX':11} ADMIN  STATE")
            for k in keys:
                state = f"revoked {k.revoked_at:%Y-%m-%d}" if k.revoked_at else "active"
                admin = "yes" if k.admin else "no"
                print(f"{k.id:32}  {k.name:20} {k.owner:20} {k.prefix:11} {admin:6} {state}")
            return 0
        if action == "revoke":
            async with db.transaction() as session:
                record = await writes.revoke_api_key(session, str(options["which"]))
            print(f"revoked key {record.name!r} (id {record.id}).")
            return 0
        return exits.USAGE
    finally:
        await db.close()


def _key_record(key: repo.ApiKey) -> dict[str, object]:
    """What `--json` shows of a key: its stored record (never the key or its hash)."""
    return {
        camel(name): value.isoformat() if isinstance(value, datetime) else value
        for name, value in asdict(key).items()
    }
