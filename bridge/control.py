"""Control messages (cancel) fanned out to every bridge; the one running the job acts."""

from __future__ import annotations

import logging

from aio_pika.abc import AbstractIncomingMessage
from pydantic import ValidationError

from actors.pool import ActorPool
from jobs.contract import ControlMessage

log = logging.getLogger(__name__)


class ControlConsumer:
    def __init__(self, pool: ActorPool) -> None:
        self.pool = pool

    async def handle(self, message: AbstractIncomingMessage) -> None:
        """Consumed with auto-ack: a lost cancel is re-sent by the user, never redelivered."""
        try:
            control = ControlMessage.decode(message.body)
        except ValidationError as exc:
            log.warning("ignoring an unreadable control message: %s", exc)
            return
        if control.kind == "cancel" and await self.pool.cancel(control.job_id):
            log.info("cancelling job %s", control.job_id)
