"""The async engine, sessions, and migrations run on start."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import weakref
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

MIGRATIONS = Path(__file__).with_name("migrations")
_SQLITE_ARGS: dict[str, Any] = {"connect_args": {"timeout": 30}}
P = ParamSpec("P")
T = TypeVar("T")


class Database:
    """One database per process. SQLite gets WAL and a busy timeout so the API and the
    bridge, two processes, can write the same file.

    `transaction()` is an async ORM session (the repository). `run(fn)` runs a plain
    function of a Core connection in one transaction: the job life cycle's statements
    (`jobs.store`). On PostgreSQL it runs on the async engine; on SQLite it is one call to the
    database's own thread, instead of a thread round trip per cursor step of each statement,
    which is what aiosqlite costs and what dominated a short job's time.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        # A server restart leaves dead connections in the pool: ping on checkout. A SQLite
        # file has no server to lose, and a ping would cost a round trip per transaction.
        kwargs: dict[str, Any] = {"pool_pre_ping": not self.is_sqlite}
        if self.is_sqlite:
            kwargs.update(_SQLITE_ARGS)
            # SQLite has one writer at a time; concurrent sessions of one process would wait
            # on each other in SQLite's sleeping busy handler. One connection per process
            # makes them queue on the pool instead, without the sleeps.
            kwargs["pool_size"] = 1
            kwargs["max_overflow"] = 0
            db_file = url.split(":///", 1)[-1]
            if db_file and db_file != ":memory:":
                Path(db_file).parent.mkdir(parents=True, exist_ok=True)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._thread_engine: Engine | None = None
        self._thread: ThreadPoolExecutor | None = None
        if self.is_sqlite and ":memory:" not in url:
            # Same file, plain sqlite3 driver, used only from one thread of its own.
            self._thread_engine = create_engine(
                url.replace("+aiosqlite", "", 1), pool_size=1, max_overflow=0, **_SQLITE_ARGS
            )
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite")
        self.on_connect(_sqlite_pragmas)

    def on_connect(self, hook: Callable[[Any, Any], None]) -> None:
        """Call `hook(dbapi_connection, record)` on every new SQLite connection (pragmas)."""
        if not self.is_sqlite:
            return
        event.listen(self.engine.sync_engine, "connect", hook)
        if self._thread_engine is not None:
            event.listen(self._thread_engine, "connect", hook)

    async def run(
        self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """`fn(connection, *args, **kwargs)` in one transaction: committed when it returns,
        rolled back when it raises."""
        if self._thread is not None:
            # In the caller's context, as `asyncio.to_thread` does (its trace: `jobs.tracing`).
            context = contextvars.copy_context()
            call = functools.partial(self._in_thread, fn, *args, **kwargs)
            return await asyncio.get_running_loop().run_in_executor(self._thread, context.run, call)
        async with self.engine.begin() as conn:
            return await conn.run_sync(fn, *args, **kwargs)

    def _in_thread(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        assert self._thread_engine is not None
        with self._thread_engine.begin() as conn:
            return fn(conn, *args, **kwargs)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session whose work commits on success and rolls back on error."""
        async with self.sessions() as session, session.begin():
            yield session

    async def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision (idempotent, safe on every start).

        One at a time per event loop: Alembic keeps the running migration in module globals,
        and `serve` starts the API and the bridge side by side."""
        loop = asyncio.get_running_loop()
        lock = _MIGRATING.setdefault(loop, asyncio.Lock())
        async with lock, self.engine.begin() as conn:
            await conn.run_sync(_upgrade)

    async def close(self) -> None:
        await self.engine.dispose()
        if self._thread is not None and self._thread_engine is not None:
            await asyncio.get_running_loop().run_in_executor(
                self._thread, self._thread_engine.dispose
            )
            self._thread.shutdown(wait=False)


_MIGRATING: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def _upgrade(connection: Connection) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
