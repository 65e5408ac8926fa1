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

from jobs.contract import JobMessage
from jobs.errors import ContractError, DeliveryLimit, EngineError, JobNotFound
from jobs.store import JobStore

log = logging.getLogger(__name__)

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


def diagnose(body: bytes, reason: str) -> tuple[str | None, EngineError]:
    """(job id if any, the error its job ends with) for a dead-lettered message body."""
    try:
        message = JobMessage.decode(body)
    except ContractError as exc:
        return _raw_job_id(body), exc
    if reason == "delivery_limit":
        return message.job_id, DeliveryLimit(
            "the job message reached the delivery limit without an outcome "
            "(its runs kept failing on infrastructure errors or crashing the bridge)"
        )
    return message.job_id, ContractError(f"the job message was dead-lettered ({reason})")


def _raw_job_id(body: bytes) -> str | None:
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    job_id = raw.get("job_id") if isinstance(raw, dict) else None
    return job_id if isinstance(job_id, str) and job_id else None


class DeadLetterConsumer:
    def __init__(self, store: JobStore) -> None:
        self.store = store

    async def handle(self, message: AbstractIncomingMessage) -> None:
        job_id, error = diagnose(message.body, death_reason(message.headers or {}))
        try:
            if job_id is not None:
                await self._fail(job_id, error)
            else:
                log.warning("dead letter without a job id dropped: %s", error.message)
        except Exception as exc:
            log.warning("dead letter of job %s not recorded (%s); retrying", job_id, exc)
            await asyncio.sleep(RETRY_DELAY_S)
            await message.nack(requeue=True)
            return
        await message.ack()

    async def _fail(self, job_id: str, error: EngineError) -> None:
        # A job that kept failing on infrastructure says what failed last (`store.note`).
        with_last = isinstance(error, DeliveryLimit)
        try:
            changed = await self.store.dead_letter(job_id, error, with_last=with_last)
        except JobNotFound:
            log.warning("dead letter names unknown job %s: %s", job_id, error.message)
            return
        if changed:
            log.warning(
                "job %s failed from the dead-letter queue: %s %s", job_id, error.code, error.message
            )
