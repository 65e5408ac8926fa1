"""Webhooks and exports: requests to clients' URLs, sent from an outbox so none is lost.

A delivery row is written in the transaction that causes it (`enqueue`; for jobs, in the
final transition of `jobs.store`). A `DeliveryWorker` (one per bridge) claims due rows with a
lease, so two bridges never send one at the same time and a dead bridge's claims come back;
each is sent in its own task, at most `Settings.delivery_concurrency` at once, with the
receiver's answer bounded by a timeout: a slow or failing receiver delays only its own
deliveries. Every attempt is recorded (`attempts_of`). A failed one is retried with the SAME
webhook-id after `delivery_retry_first_s`, doubling up to `delivery_retry_max_s`: webhooks
until `webhook_retry_for_s` after their event, exports `export_attempts` times.

Webhooks follow Standard Webhooks (standardwebhooks.com), signed with its reference library:
headers `webhook-id`, `webhook-timestamp` (the attempt's, in seconds) and `webhook-signature`
(`v1,` + base64 HMAC-SHA256 of `id.timestamp.body` under the owner's secret). The body is
`{"type", "timestamp", "data"}`; a job's `data` is the job as GraphQL shows it
(`jobs.shapes.job_out`, plus `export` when it has one: its webhook waits until the export
ended, so it says how that went), rendered when first sent and kept, so every attempt sends
the same bytes. Another event (`batch.completed`) passes its data to `enqueue_webhook`.

>>> await db.run(enqueue_webhook, owner="alice", url=url, event_type="batch.completed",
...              data={"id": batch_id}, subject_id=batch_id, at=now())   # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import Any, cast

import httpx
from cryptography.fernet import Fernet
from sqlalchemy import Connection, DateTime, Table, bindparam, insert, or_, select, update
from standardwebhooks import Webhook

from jobs.db import Database
from jobs.db import repository as repo
from jobs.db.tables import DeliveryAttemptRow, DeliveryRow
from jobs.errors import EngineError, without_paths
from jobs.keyring import stored_secret
from jobs.settings import Settings
from jobs.shapes import batch_out, job_out
from jobs.storage import Storage
from jobs.urls import guard_of, open_url

log = logging.getLogger(__name__)

WEBHOOK = "webhook"
BATCH_COMPLETED = "batch.completed"
"""The event type of a batch's end; its data is the batch (`jobs.shapes.batch_out`)."""
EXPORT = "export"
DELIVERED = "DELIVERED"
FAILED = "FAILED"
PENDING = "PENDING"
LEASE_MARGIN_S = 30.0
ERROR_CHARS = 500

_TS = DateTime(timezone=True)
_deliveries = cast(Table, DeliveryRow.__table__)
_attempts = cast(Table, DeliveryAttemptRow.__table__)
_INSERT = insert(_deliveries)
_export = _deliveries.alias("export")
# A job's webhook waits for its export to end, so that its `data.export` says how it went.
_EXPORT_PENDING = (
    select(_export.c.id)
    .where(
        _export.c.subject_id == _deliveries.c.subject_id,
        _export.c.kind == EXPORT,
        _export.c.done_at.is_(None),
    )
    .exists()
)
_DUE = (
    select(_deliveries.c.id, _deliveries.c.kind)
    .where(
        _deliveries.c.done_at.is_(None),
        or_(_deliveries.c.kind != WEBHOOK, ~_EXPORT_PENDING),
        _deliveries.c.next_at <= bindparam("b_now", type_=_TS),
        or_(
            _deliveries.c.lease_until.is_(None),
            _deliveries.c.lease_until < bindparam("b_now", type_=_TS),
        ),
    )
    .order_by(_deliveries.c.next_at)
    .limit(bindparam("b_limit"))
)
_CLAIM = (
    update(_deliveries)
    .where(
        _deliveries.c.id == bindparam("b_id"),
        _deliveries.c.done_at.is_(None),
        or_(
            _deliveries.c.lease_until.is_(None),
            _deliveries.c.lease_until < bindparam("b_now", type_=_TS),
        ),
    )
    .values(lease_until=bindparam("b_until", type_=_TS))
    .returning(*_deliveries.c)
)
_KEEP_BODY = (
    update(_deliveries)
    .where(_deliveries.c.id == bindparam("b_id"), _deliveries.c.body.is_(None))
    .values(body=bindparam("b_body"))
)
_SETTLE = (
    update(_deliveries)
    .where(_deliveries.c.id == bindparam("b_id"))
    .values(
        attempts=bindparam("b_attempts"),
        next_at=bindparam("b_next", type_=_TS),
        done_at=bindparam("b_done", type_=_TS),
        outcome=bindparam("b_outcome"),
        lease_until=None,
    )
)
_RELEASE = update(_deliveries).where(_deliveries.c.id == bindparam("b_id")).values(lease_until=None)
_INSERT_ATTEMPT = insert(_attempts)
_ATTEMPTS_OF = (
    select(
        _deliveries.c.id,
        _deliveries.c.event_type,
        _attempts.c.attempt,
        _attempts.c.at,
        _attempts.c.status_code,
        _attempts.c.error,
    )
    .join(_attempts, _attempts.c.delivery_id == _deliveries.c.id)
    .where(
        _deliveries.c.subject_id == bindparam("b_subject"),
        _deliveries.c.kind == bindparam("b_kind"),
    )
    .order_by(_attempts.c.at, _attempts.c.id)
)
_STATE_OF = (
    select(_deliveries.c.id, _deliveries.c.url, _deliveries.c.outcome, _deliveries.c.attempts)
    .where(
        _deliveries.c.subject_id == bindparam("b_subject"),
        _deliveries.c.kind == bindparam("b_kind"),
    )
    .order_by(_deliveries.c.created_at)
)


def new_webhook_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def webhook_body(event_type: str, at: datetime, data: dict[str, Any]) -> bytes:
    """The POSTed JSON: `{"type", "timestamp", "data"}` (Standard Webhooks' payload shape)."""
    payload = {"type": event_type, "timestamp": at.isoformat(), "data": data}
    return json.dumps(payload, separators=(",", ":"), default=str).encode()


def _enqueue(
    conn: Connection,
    *,
    kind: str,
    owner: str | None,
    url: str,
    event_type: str,
    subject_id: str,
    at: datetime,
    body: bytes | None,
) -> str:
    delivery_id = new_webhook_id()
    conn.execute(
        _INSERT,
        {
            "id": delivery_id,
            "kind": kind,
            "owner": owner,
            "subject_id": subject_id,
            "url": url,
            "event_type": event_type,
            "body": body,
            "created_at": at,
            "next_at": at,
            "attempts": 0,
            "lease_until": None,
            "done_at": None,
            "outcome": None,
        },
    )
    return delivery_id


def enqueue_webhook(
    conn: Connection,
    *,
    owner: str | None,
    url: str,
    event_type: str,
    data: dict[str, Any] | None,
    subject_id: str,
    at: datetime,
) -> str:
    """Store a webhook for `url` in the caller's transaction; returns its webhook-id. `data`
    None: a job's, rendered from job `subject_id` when first sent. Call it inside the
    transaction of the change it announces, so the two commit together."""
    body = None if data is None else webhook_body(event_type, at, data)
    return _enqueue(
        conn,
        kind=WEBHOOK,
        owner=owner,
        url=url,
        event_type=event_type,
        subject_id=subject_id,
        at=at,
        body=body,
    )


def enqueue_export(
    conn: Connection, *, owner: str | None, url: str, job_id: str, at: datetime
) -> str:
    """Store the PUT of job `job_id`'s output to `url` (call it as the job succeeds)."""
    return _enqueue(
        conn,
        kind=EXPORT,
        owner=owner,
        url=url,
        event_type="job.output",
        subject_id=job_id,
        at=at,
        body=None,
    )


@dataclass(frozen=True, slots=True)
class Attempt:
    webhook_id: str
    event_type: str
    attempt: int
    at: datetime
    status_code: int | None
    error: str | None


@dataclass(frozen=True, slots=True)
class DeliveryState:
    """Where the deliveries of one kind for a subject stand (the newest one)."""

    url: str
    status: str
    attempts: int
    error: str | None


def attempts_of(conn: Connection, subject_id: str, kind: str = WEBHOOK) -> list[Attempt]:
    """Every attempt of the deliveries about `subject_id`, oldest first."""
    rows = conn.execute(_ATTEMPTS_OF, {"b_subject": subject_id, "b_kind": kind}).all()
    return [Attempt(str(r[0]), str(r[1]), int(r[2]), repo.aware(r[3]), r[4], r[5]) for r in rows]


def state_of(conn: Connection, subject_id: str, kind: str = EXPORT) -> DeliveryState | None:
    rows = conn.execute(_STATE_OF, {"b_subject": subject_id, "b_kind": kind}).all()
    if not rows:
        return None
    delivery_id, url, outcome, attempts = rows[-1]
    tries = [a for a in attempts_of(conn, subject_id, kind) if a.webhook_id == delivery_id]
    error = tries[-1].error if tries and outcome != DELIVERED else None
    return DeliveryState(str(url), str(outcome or PENDING), int(attempts), error)


def backoff_s(settings: Settings, attempts: int) -> float:
    """Wait after the `attempts`-th failed try: first `delivery_retry_first_s`, doubling."""
    first, most = settings.delivery_retry_first_s, settings.delivery_retry_max_s
    return float(min(most, first * 2 ** max(0, attempts - 1)))


def _due(conn: Connection, at: datetime, limit: int) -> list[tuple[str, str]]:
    rows = conn.execute(_DUE, {"b_now": at, "b_limit": limit}).all()
    return [(str(r[0]), str(r[1])) for r in rows]


def _claim(
    conn: Connection, delivery_id: str, at: datetime, until: datetime
) -> dict[str, Any] | None:
    row = conn.execute(_CLAIM, {"b_id": delivery_id, "b_now": at, "b_until": until}).one_or_none()
    return None if row is None else dict(row._mapping)


def _settle(
    conn: Connection,
    delivery_id: str,
    attempt: int,
    at: datetime,
    status_code: int | None,
    error: str | None,
    next_at: datetime,
    done: bool,
    outcome: str | None,
) -> None:
    conn.execute(
        _INSERT_ATTEMPT,
        {
            "delivery_id": delivery_id,
            "attempt": attempt,
            "at": at,
            "status_code": status_code,
            "error": error,
        },
    )
    conn.execute(
        _SETTLE,
        {
            "b_id": delivery_id,
            "b_attempts": attempt,
            "b_next": next_at,
            "b_done": at if done else None,
            "b_outcome": outcome,
        },
    )


def _release(conn: Connection, delivery_id: str) -> None:
    conn.execute(_RELEASE, {"b_id": delivery_id})


def _keep_body(conn: Connection, delivery_id: str, body: bytes) -> None:
    conn.execute(_KEEP_BODY, {"b_id": delivery_id, "b_body": body})


class DeliveryWorker:
    """Sends due deliveries until stopped. `notify()` says a new one was committed."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        storage: Storage,
        fernet: Fernet,
        clock: Callable[[], datetime] = repo.now,
    ) -> None:
        self.settings = settings
        self.db = db
        self.storage = storage
        self.fernet = fernet
        self.clock = clock
        self.guard = guard_of(settings)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._sending: set[asyncio.Task[None]] = set()
        self._client = httpx.AsyncClient(trust_env=False, follow_redirects=False)

    def notify(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="deliveries")

    async def stop(self) -> None:
        """Stop claiming; cut the sends in flight (their claims are released, so the next
        worker sends them again with the same id)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for task in list(self._sending):
            task.cancel()
        await asyncio.gather(*self._sending, return_exceptions=True)
        await self._client.aclose()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.send_due()
            except Exception as exc:  # the database is away: look again later
                log.warning("deliveries: %s; retrying", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.delivery_poll_s)

    async def send_due(self) -> int:
        """Claim what is due (as many as there are free slots) and start sending it."""
        free = self.settings.delivery_concurrency - len(self._sending)
        if free <= 0:
            return 0
        at = self.clock()
        started = 0
        for delivery_id, kind in await self.db.run(_due, at, free):
            until = at + timedelta(seconds=self.lease_s(kind))
            row = await self.db.run(_claim, delivery_id, at, until)
            if row is None:  # another worker took it
                continue
            task = asyncio.create_task(self._send(row), name=f"delivery-{delivery_id}")
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)
            started += 1
        return started

    def lease_s(self, kind: str) -> float:
        """How long a claim lasts: the send's own time limit and a margin, so the claim of a
        bridge that died mid-send comes back soon after that send would have ended."""
        limit = (
            self.settings.export_timeout_s if kind == EXPORT else self.settings.webhook_timeout_s
        )
        return limit + LEASE_MARGIN_S

    async def _send(self, row: dict[str, Any]) -> None:
        delivery_id = str(row["id"])
        try:
            if row["kind"] == EXPORT:
                status, error = await self._export(row)
            else:
                status, error = await self._post(row)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.db.run(_release, delivery_id))
            raise
        except Exception as exc:
            log.exception("delivery %s", delivery_id)
            status, error = None, f"internal error: {type(exc).__name__}"
        await self._record(row, status, error)

    async def _record(self, row: dict[str, Any], status: int | None, error: str | None) -> None:
        at = self.clock()
        attempt = int(row["attempts"]) + 1
        ok = status is not None and 200 <= status < 300 and error is None
        created = repo.aware(row["created_at"])
        next_at = at + timedelta(seconds=backoff_s(self.settings, attempt))
        if row["kind"] == EXPORT:
            gave_up = attempt >= self.settings.export_attempts
        else:
            gave_up = next_at > created + timedelta(seconds=self.settings.webhook_retry_for_s)
        done = ok or gave_up
        outcome = DELIVERED if ok else FAILED if gave_up else None
        await self.db.run(
            _settle, str(row["id"]), attempt, at, status, error, next_at, done, outcome
        )
        if done and row["kind"] == EXPORT:
            self.notify()  # the job's webhook, which waited for this, is due
        if not ok:
            log.info(
                "%s %s attempt %d: %s",
                row["kind"],
                row["id"],
                attempt,
                error or f"answered {status}",
            )

    async def _post(self, row: dict[str, Any]) -> tuple[int | None, str | None]:
        body = row["body"]
        if body is None:
            body = await self._job_body(row)
            await self.db.run(_keep_body, str(row["id"]), body)
        secret = await self.db.run(stored_secret, self.fernet, row["owner"])
        if secret is None:
            return None, "the owner has no webhook secret (rotateWebhookSecret)"
        text = bytes(body).decode()
        at = self.clock()
        headers = {
            "content-type": "application/json",
            "webhook-id": str(row["id"]),
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": Webhook(secret).sign(str(row["id"]), at, text),
        }
        try:
            async with asyncio.timeout(self.settings.webhook_timeout_s):
                async with open_url(
                    self._client,
                    "POST",
                    str(row["url"]),
                    self.guard,
                    content=bytes(body),
                    headers=headers,
                    follow_redirects=False,
                ) as response:
                    await response.aread()
                    return response.status_code, None
        except TimeoutError:
            return None, f"no answer within {self.settings.webhook_timeout_s:g} s"
        except EngineError as exc:
            return None, exc.message[:ERROR_CHARS]

    async def _job_body(self, row: dict[str, Any]) -> bytes:
        subject = str(row["subject_id"])
        async with self.db.transaction() as session:
            if row["event_type"] == BATCH_COMPLETED:
                batch = await repo.get_batch(session, subject)
                jobs = await repo.batch_jobs(session, subject)
            else:
                jobs = [await repo.get_job(session, subject)]
            ids = [i for j in jobs for i in (j.input_file_id, j.output_file_id) if i]
            files = await repo.get_files(session, ids)
        public_url = self.settings.public_url
        if row["event_type"] == BATCH_COMPLETED:
            data = batch_out(batch, jobs, files, public_url)
        else:
            data = job_out(jobs[0], files, public_url)
            export = await self.db.run(state_of, subject, EXPORT)
            if export is not None:  # ended: the webhook waited for it (`_DUE`)
                error = None if export.error is None else without_paths(export.error)
                data["export"] = asdict(replace(export, error=error))
        return webhook_body(str(row["event_type"]), repo.aware(row["created_at"]), data)

    async def _export(self, row: dict[str, Any]) -> tuple[int | None, str | None]:
        async with self.db.transaction() as session:
            job = await repo.get_job(session, str(row["subject_id"]))
            files = await repo.get_files(session, [job.output_file_id or ""])
        output = files.get(job.output_file_id or "")
        if output is None:
            return None, "the job has no output to export"
        key = output.storage_key
        size = await asyncio.to_thread(self.storage.size, key)
        parts = self.storage.chunks(key)

        async def chunks() -> AsyncIterator[bytes]:
            while chunk := await asyncio.to_thread(next, parts, b""):
                yield chunk

        limit = self.settings.export_timeout_s
        try:
            async with (
                asyncio.timeout(limit),
                open_url(
                    self._client,
                    "PUT",
                    str(row["url"]),
                    self.guard,
                    content=chunks(),
                    headers={
                        "content-length": str(size),
                        "content-type": "application/octet-stream",
                    },
                    follow_redirects=False,
                ) as response,
            ):
                answer = (await response.aread())[:200].decode(errors="replace")
                if response.is_success:
                    return response.status_code, None
                return response.status_code, f"the PUT answered {response.status_code}: {answer}"
        except TimeoutError:
            return None, f"the PUT took longer than {limit:g} s"
        except EngineError as exc:
            return None, exc.message[:ERROR_CHARS]
