"""Webhooks and exports from the deliveries outbox, against real HTTP servers on 127.0.0.1
(private URLs allowed in these settings)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from job_records import stored_file
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from jobs.db import Database
from jobs.db import repository as repo
from jobs.deliveries import (
    DELIVERED,
    EXPORT,
    FAILED,
    LEASE_MARGIN_S,
    DeliveryWorker,
    attempts_of,
    state_of,
)
from jobs.errors import ProcessingFailed
from jobs.keyring import rotate_secret, server_key
from jobs.models import AudioFile
from jobs.settings import Settings
from jobs.storage import LocalStorage
from jobs.store import JobStore, NewJob
from tests.http_servers import Reply, Request, http_server


@pytest.fixture
def hook_settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        allow_private_urls=True,
        delivery_retry_first_s=0.3,
        delivery_poll_s=0.05,
        webhook_timeout_s=2.0,
    )


@pytest.fixture
def db(database: Database) -> Database:
    """SQLite and PostgreSQL: the claims and the due query are SQL both must run alike."""
    return database


async def until(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


def spec_signature(secret: str, webhook_id: str, timestamp: str, body: bytes) -> str:
    """Standard Webhooks' algorithm, written out: base64 HMAC-SHA256 of `id.timestamp.body`
    under the base64-decoded part of the secret after `whsec_`."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


async def ended_job(
    db: Database, store: JobStore, url: str, owner: str = "alice", export: str | None = None
) -> str:
    file = await stored_file(db, owner)
    job_id = repo.new_id()
    new = NewJob(job_id, file.id, [], "WAV", "FLOAT", b"m", owner, webhook_url=url)
    if export is not None:
        new = NewJob(job_id, file.id, [], "WAV", "FLOAT", b"m", owner, export_url=export)
    await store.submit(new, most_unfinished=10)
    await store.start(job_id, actor="a")
    return job_id


async def test_signed_webhook_retried_after_503_with_the_same_id(
    hook_settings: Settings, db: Database
) -> None:
    fernet = server_key(hook_settings)
    secret = await rotate_secret(db, fernet, "alice")
    assert secret.startswith("whsec_")
    answers = iter([503, 204])
    storage = LocalStorage(hook_settings.storage_path)
    with http_server(lambda r: Reply(next(answers, 204))) as server:
        worker = DeliveryWorker(hook_settings, db, storage, fernet)
        store = JobStore(db, deliveries=worker.notify)
        worker.start()
        try:
            job_id = await ended_job(db, store, server.url("/hook"))
            await store.fail(job_id, ProcessingFailed("the input broke"))
            await until(lambda: len(server.seen()) == 2)
            async with asyncio.timeout(10):
                while await count_attempts(db, job_id) < 2:
                    await asyncio.sleep(0.02)
        finally:
            await worker.stop()

    first, second = server.seen()
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert first.headers["webhook-id"].startswith("msg_")
    assert first.body == second.body
    assert second.at - first.at >= 0.3  # the backoff's first wait
    for request in (first, second):
        headers = request.headers
        expected = spec_signature(
            secret, headers["webhook-id"], headers["webhook-timestamp"], request.body
        )
        assert headers["webhook-signature"] == expected
        Webhook(secret).verify(request.body, headers)  # the reference library agrees
        assert headers["content-type"] == "application/json"
    payload = json.loads(first.body)
    assert payload["type"] == "job.failed"
    assert payload["data"]["id"] == job_id
    assert payload["data"]["status"] == "FAILED"
    assert payload["data"]["error"] == {"code": "PROCESSING_FAILED", "message": "the input broke"}
    assert payload["data"]["input"]["downloadUrl"].endswith(payload["data"]["input"]["id"])

    tries = await db.run(attempts_of, job_id)
    assert [(t.attempt, t.status_code) for t in tries] == [(1, 503), (2, 204)]
    assert {t.webhook_id for t in tries} == {first.headers["webhook-id"]}
    # After a rotation, the old signature no longer verifies.
    other = await rotate_secret(db, fernet, "alice")
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(first.body, first.headers)


async def count_attempts(db: Database, job_id: str) -> int:
    return len(await db.run(attempts_of, job_id))


async def test_restart_between_the_end_and_the_webhook_delivers_once_with_the_same_id(
    hook_settings: Settings, db: Database
) -> None:
    """The worker is what a bridge runs. The first attempt is cut by its bridge's stop (the
    receiver holds it); the job ends; a new bridge's worker sends it again, with the same
    id, and once it is answered nothing is sent again, across a further restart."""
    fernet = server_key(hook_settings)
    secret = await rotate_secret(db, fernet, "alice")
    storage = LocalStorage(hook_settings.storage_path)
    hold = threading.Event()

    def handle(request: Request) -> Reply:
        if len(server.seen()) == 1:
            hold.wait(20)  # the first one hangs until its bridge has stopped
        return Reply(200)

    with http_server(handle) as server:
        first = DeliveryWorker(hook_settings, db, storage, fernet)
        store = JobStore(db, deliveries=first.notify)
        first.start()
        job_id = await ended_job(db, store, server.url("/hook"))
        await store.fail(job_id, ProcessingFailed("broke"))
        await until(lambda: len(server.seen()) == 1)
        await first.stop()  # the bridge restarts mid-delivery
        hold.set()
        assert await count_attempts(db, job_id) == 0  # cut, not counted: the claim is released

        second = DeliveryWorker(hook_settings, db, storage, fernet)
        second.start()
        try:
            await until(lambda: len(server.seen()) == 2)
            async with asyncio.timeout(10):
                while await count_attempts(db, job_id) < 1:
                    await asyncio.sleep(0.02)
        finally:
            await second.stop()
        third = DeliveryWorker(hook_settings, db, storage, fernet)
        third.start()
        try:
            assert await third.send_due() == 0  # nothing left to send
        finally:
            await third.stop()

    ids = {r.headers["webhook-id"] for r in server.seen()}
    assert len(ids) == 1
    answered = server.seen()[1]
    Webhook(secret).verify(answered.body, answered.headers)
    tries = await db.run(attempts_of, job_id)
    assert [(t.attempt, t.status_code) for t in tries] == [(1, 200)]


async def test_a_job_that_ends_while_no_bridge_runs_is_announced_by_the_next(
    hook_settings: Settings, db: Database
) -> None:
    fernet = server_key(hook_settings)
    await rotate_secret(db, fernet, "alice")
    with http_server(lambda r: Reply(200)) as server:
        store = JobStore(db)  # no worker: the bridge is down
        job_id = await ended_job(db, store, server.url("/hook"))
        await store.fail(job_id, ProcessingFailed("broke"))
        worker = DeliveryWorker(hook_settings, db, LocalStorage(hook_settings.storage_path), fernet)
        worker.start()
        try:
            async with asyncio.timeout(20):  # recorded, not only received
                while not await count_attempts(db, job_id):
                    await asyncio.sleep(0.02)
        finally:
            await worker.stop()
    assert len(server.seen()) == 1
    assert [t.status_code for t in await db.run(attempts_of, job_id)] == [200]


async def test_a_silent_receiver_blocks_neither_others_nor_the_job(
    hook_settings: Settings, db: Database
) -> None:
    fernet = server_key(hook_settings)
    await rotate_secret(db, fernet, "alice")
    stop = threading.Event()

    def handle(request: Request) -> Reply:
        if request.path == "/silent":
            stop.wait(30)
        return Reply(200)

    settings = hook_settings.model_copy(update={"webhook_timeout_s": 1.0})
    with http_server(handle) as server:
        worker = DeliveryWorker(settings, db, LocalStorage(settings.storage_path), fernet)
        store = JobStore(db, deliveries=worker.notify)
        worker.start()
        try:
            silent = await ended_job(db, store, server.url("/silent"))
            await store.fail(silent, ProcessingFailed("x"))
            await until(lambda: len(server.seen()) == 1)
            fine = await ended_job(db, store, server.url("/fine"))
            await store.fail(fine, ProcessingFailed("y"))
            await until(lambda: any(r.path == "/fine" for r in server.seen()), timeout=0.9)
            async with asyncio.timeout(10):
                while not await db.run(attempts_of, silent):
                    await asyncio.sleep(0.05)
        finally:
            stop.set()
            await worker.stop()
    (timed_out, *_) = await db.run(attempts_of, silent)
    assert timed_out.status_code is None
    assert timed_out.error == "no answer within 1 s"


async def exported_job(db: Database, store: JobStore, url: str, size: int) -> str:
    """A job that SUCCEEDED with output `out/result.wav` and an export to `url`."""
    job_id = await ended_job(db, store, "", export=url)
    output = AudioFile(
        repo.new_id(), "r.wav", "WAV", "FLOAT", 48000, 2, 1000, size, "out/result.wav",
        "output", "alice", repo.now(),
    )  # fmt: skip
    await store.succeed(
        job_id, output, None, input_file_id=output.id, input_analysis=None, dsp_seconds=0.1,
        node_id=None, actor=None,
    )  # fmt: skip
    return job_id


async def test_export_puts_the_output_retries_and_says_why_it_gave_up(
    hook_settings: Settings, db: Database
) -> None:
    storage = LocalStorage(hook_settings.storage_path)
    blob = bytes(range(256)) * 4000
    with storage.writing("out/result.wav") as tmp:
        tmp.write_bytes(blob)
    settings = hook_settings.model_copy(update={"export_attempts": 3})
    answers = {"/ok": iter([500, 200]), "/never": iter([])}

    def handle(request: Request) -> Reply:
        return Reply(next(answers[request.path], 403), body=b"<Error>AccessDenied</Error>")

    fernet = server_key(settings)
    with http_server(handle) as server:
        worker = DeliveryWorker(settings, db, storage, fernet)
        store = JobStore(db, deliveries=worker.notify)
        worker.start()
        try:
            jobs = {}
            for path in answers:
                jobs[path] = await exported_job(db, store, server.url(path), len(blob))

            async def settled() -> bool:
                states = [await db.run(state_of, j) for j in jobs.values()]
                return all(s is not None and s.status != "PENDING" for s in states)

            async with asyncio.timeout(20):
                while not await settled():
                    await asyncio.sleep(0.05)
        finally:
            await worker.stop()

    ok = await db.run(state_of, jobs["/ok"])
    assert ok is not None
    assert (ok.status, ok.attempts, ok.error) == (DELIVERED, 2, None)
    puts = [r for r in server.seen() if r.path == "/ok"]
    assert [r.method for r in puts] == ["PUT", "PUT"]
    assert puts[-1].body == blob
    never = await db.run(state_of, jobs["/never"])
    assert never is not None
    assert (never.status, never.attempts) == (FAILED, 3)
    assert never.error is not None and "the PUT answered 403" in never.error
    assert storage.exists("out/result.wav")  # the stored output stays downloadable


async def test_a_put_is_bounded_and_a_dead_bridges_claim_on_it_lasts_only_that_long(
    hook_settings: Settings, db: Database
) -> None:
    """A bridge that dies mid-PUT holds its claim for the PUT's time limit plus a margin,
    not an hour: then another bridge sends it again. A PUT past the limit is cut and retried."""
    storage = LocalStorage(hook_settings.storage_path)
    with storage.writing("out/result.wav") as tmp:
        tmp.write_bytes(b"RIFF" * 1000)
    release = threading.Event()

    def hang(request: Request) -> Reply:
        release.wait(30)
        return Reply(200)

    settings = hook_settings.model_copy(update={"export_timeout_s": 60.0, "export_attempts": 1})
    fernet = server_key(settings)
    with http_server(hang) as server:
        started = repo.now()
        dying = DeliveryWorker(settings, db, storage, fernet)
        store = JobStore(db)
        await exported_job(db, store, server.url("/slow"), 4000)
        workers = [dying]
        try:
            assert await dying.send_due() == 1
            await until(lambda: len(server.seen()) == 1)  # mid-PUT; now "the bridge died"
            lease = dying.lease_s(EXPORT)
            assert lease == 60.0 + LEASE_MARGIN_S

            def shifted(seconds: float) -> DeliveryWorker:
                later = started + timedelta(seconds=seconds)
                workers.append(DeliveryWorker(settings, db, storage, fernet, clock=lambda: later))
                return workers[-1]

            assert await shifted(lease - 2).send_due() == 0  # still claimed
            assert await shifted(lease + 2).send_due() == 1  # claimed again, soon after
            await until(lambda: len(server.seen()) == 2)
        finally:
            release.set()
            for worker in workers:
                await worker.stop()

        quick = settings.model_copy(update={"export_timeout_s": 0.5})
        release.clear()
        job_id = await exported_job(db, store, server.url("/slow"), 4000)
        worker = DeliveryWorker(quick, db, storage, fernet)
        worker.start()
        try:
            async with asyncio.timeout(20):
                while (
                    found := await db.run(state_of, job_id)
                ) is None or found.status == "PENDING":
                    await asyncio.sleep(0.05)
        finally:
            release.set()
            await worker.stop()
    assert (found.status, found.attempts) == (FAILED, 1)
    assert found.error == "the PUT took longer than 0.5 s"


async def test_a_jobs_webhook_waits_for_its_export_and_says_how_it_went(
    hook_settings: Settings, db: Database
) -> None:
    storage = LocalStorage(hook_settings.storage_path)
    with storage.writing("out/result.wav") as tmp:
        tmp.write_bytes(b"RIFF" * 1000)
    settings = hook_settings.model_copy(update={"export_attempts": 2})
    fernet = server_key(settings)
    secret = await rotate_secret(db, fernet, "alice")

    def handle(request: Request) -> Reply:
        return Reply(204) if request.method == "POST" else Reply(403, body=b"denied")

    with http_server(handle) as server:
        worker = DeliveryWorker(settings, db, storage, fernet)
        store = JobStore(db, deliveries=worker.notify)
        worker.start()
        try:
            file = await stored_file(db, "alice")
            job_id = repo.new_id()
            new = NewJob(
                job_id, file.id, [], "WAV", "FLOAT", b"m", "alice",
                webhook_url=server.url("/hook"), export_url=server.url("/put"),
            )  # fmt: skip
            await store.submit(new, most_unfinished=10)
            await store.start(job_id, actor="a")
            output = AudioFile(
                repo.new_id(), "r.wav", "WAV", "FLOAT", 48000, 2, 1000, 4000, "out/result.wav",
                "output", "alice", repo.now(),
            )  # fmt: skip
            await store.succeed(
                job_id, output, None, input_file_id=output.id, input_analysis=None,
                dsp_seconds=0.1, node_id=None, actor=None,
            )  # fmt: skip
            await until(lambda: any(r.method == "POST" for r in server.seen()))
        finally:
            await worker.stop()

    assert [r.method for r in server.seen()] == ["PUT", "PUT", "POST"]
    payload = Webhook(secret).verify(server.seen()[-1].body, server.seen()[-1].headers)
    assert payload["type"] == "job.succeeded"
    export = payload["data"]["export"]
    assert (export["url"], export["status"], export["attempts"]) == (server.url("/put"), FAILED, 2)
    assert export["error"].startswith("the PUT answered 403: denied")
