"""The dead-letter queue's consumer: a job whose message died there is failed with a reason.

Messages arrive here when the bridge rejected them (unreadable contract: BAD_MESSAGE) or when
the quorum queue's delivery limit was reached (the bridge kept crashing or requeueing:
DELIVERY_LIMIT). Either way the job must not stay QUEUED forever.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any

from aio_pika.abc import AbstractIncomingMessage

from jobs.broker import Broker
from jobs.contract import JobEvent, JobMessage
from jobs.db import Database
from jobs.db import repository as repo
from jobs.errors import ContractError, JobNotFound
from jobs.states import JobStatus

log = logging.getLogger(__name__)

DELIVERY_LIMIT = "DELIVERY_LIMIT"
RETRY_DELAY_S = 1.0


def death_reason(headers: Mapping[str, Any]) -> str:
    """RabbitMQ's reason for the first death: 'rejected', 'delivery_limit', 'expired'..."""
    reason = headers.get("x-first-death-reason")
    if reason is None:
        deaths = headers.get("x-death") or []
        if deaths and isinstance(deaths[0], Mapping):
            reason = deaths[0].get("reason")
    if isinstance(reason, bytes):
        reason = reason.decode()
    return str(reason or "unknown")


def diagnose(body: bytes, reason: str) -> tuple[str | None, str, str]:
    """(job id if any, error code, error message) for a dead-lettered message body."""
    try:
        message = JobMessage.decode(body)
    except ContractError as exc:
        return _raw_job_id(body), ContractError.code, exc.message
    if reason == "delivery_limit":
        return (
            message.job_id,
            DELIVERY_LIMIT,
            "the job message reached the delivery limit without an outcome "
            "(its runs kept failing on infrastructure errors or crashing the bridge)",
        )
    return message.job_id, ContractError.code, f"the job message was dead-lettered ({reason})"


def _raw_job_id(body: bytes) -> str | None:
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    job_id = raw.get("job_id") if isinstance(raw, dict) else None
    return job_id if isinstance(job_id, str) and job_id else None


class DeadLetterConsumer:
    def __init__(self, db: Database, broker: Broker) -> None:
        self.db = db
        self.broker = broker

    async def handle(self, message: AbstractIncomingMessage) -> None:
        job_id, code, text = diagnose(message.body, death_reason(message.headers or {}))
        try:
            if job_id is not None:
                await self._fail(job_id, code, text)
            else:
                log.warning("dead letter without a job id dropped: %s", text)
        except Exception as exc:
            log.warning("dead letter of job %s not recorded (%s); retrying", job_id, exc)
            await asyncio.sleep(RETRY_DELAY_S)
            await message.nack(requeue=True)
            return
        await message.ack()

    async def _fail(self, job_id: str, code: str, text: str) -> None:
        async with self.db.transaction() as session:
            try:
                job = await repo.get_job(session, job_id)
            except JobNotFound:
                log.warning("dead letter names unknown job %s: %s", job_id, text)
                return
            if job.status.terminal:
                return
            if code == DELIVERY_LIMIT and job.message:
                text = f"{text}; last: {job.message}"
            await repo.set_status(
                session, job_id, JobStatus.FAILED, error_code=code, error_message=text
            )
        log.warning("job %s failed from the dead-letter queue: %s %s", job_id, code, text)
        await self.broker.publish_event(
            JobEvent(job_id=job_id, status=JobStatus.FAILED, message=f"{code}: {text}")
        )
