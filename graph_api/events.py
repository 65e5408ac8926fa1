"""Fan-out of broker job events to in-process subscribers.

Every API process binds its own exclusive, auto-deleting queue to the `<prefix>.events`
fanout exchange, so every replica sees every event; each event then goes to the asyncio queues
of the subscriptions watching that job, and of those watching its owner (the event carries
the owner, so this is a dictionary lookup, whatever the number of subscribers). The queue
lives on the broker's robust connection, so aio-pika re-declares, re-binds and re-consumes
it after a broker restart.

Bridge heartbeats (AMQP type `heartbeat`) arrive on the same queue; the relay keeps the
latest one per bridge for `/readyz`, and forgets a bridge silent for `FORGET_AFTER_S`.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from aio_pika.abc import AbstractIncomingMessage, AbstractQueue, AbstractRobustChannel
from opentelemetry.trace import SpanKind
from pydantic import ValidationError

from jobs import tracing
from jobs.broker import BATCH_TYPE, HEARTBEAT_TYPE, Broker
from jobs.contract import BatchEvent, BridgeHeartbeat, JobEvent
from jobs.logs import job_context

log = logging.getLogger(__name__)

FORGET_AFTER_S = 3600.0


class EventRelay:
    """Subscriptions register per job id; `attach` starts feeding them from the broker.

    >>> with relay.subscribe(job_id) as queue:      # doctest: +SKIP
    ...     event = await queue.get()
    """

    def __init__(self, queue_prefix: str) -> None:
        self.queue_name = f"{queue_prefix}.events.api-{uuid.uuid4().hex[:12]}"
        self._subscribers: defaultdict[str, set[asyncio.Queue[JobEvent]]] = defaultdict(set)
        self._by_owner: defaultdict[str | None, set[asyncio.Queue[JobEvent]]] = defaultdict(set)
        self._everything: set[asyncio.Queue[JobEvent]] = set()
        self._batches: defaultdict[str, set[asyncio.Queue[BatchEvent]]] = defaultdict(set)
        self.listeners: list[Callable[[JobEvent], None]] = []
        self._bridges: dict[str, BridgeHeartbeat] = {}
        self._channel: AbstractRobustChannel | None = None
        self._queue: AbstractQueue | None = None
        self.attached = asyncio.Event()

    @contextmanager
    def subscribe(self, job_id: str) -> Iterator[asyncio.Queue[JobEvent]]:
        """A queue receiving every event of `job_id` from now until the block exits."""
        queue: asyncio.Queue[JobEvent] = asyncio.Queue()
        self._subscribers[job_id].add(queue)
        try:
            yield queue
        finally:
            subscribers = self._subscribers.get(job_id)
            if subscribers is not None:
                subscribers.discard(queue)
                if not subscribers:
                    del self._subscribers[job_id]

    @contextmanager
    def subscribe_batch(self, batch_id: str) -> Iterator[asyncio.Queue[BatchEvent]]:
        """A queue receiving every event of batch `batch_id` until the block exits."""
        queue: asyncio.Queue[BatchEvent] = asyncio.Queue()
        self._batches[batch_id].add(queue)
        try:
            yield queue
        finally:
            subscribers = self._batches.get(batch_id)
            if subscribers is not None:
                subscribers.discard(queue)
                if not subscribers:
                    del self._batches[batch_id]

    @contextmanager
    def subscribe_owner(
        self, owner: str | None, queue: asyncio.Queue[JobEvent] | None = None
    ) -> Iterator[asyncio.Queue[JobEvent]]:
        """A queue (`queue`, or a new one) receiving every event of `owner`'s jobs until the
        block exits."""
        queue = asyncio.Queue() if queue is None else queue
        self._by_owner[owner].add(queue)
        try:
            yield queue
        finally:
            subscribers = self._by_owner.get(owner)
            if subscribers is not None:
                subscribers.discard(queue)
                if not subscribers:
                    del self._by_owner[owner]

    @contextmanager
    def subscribe_all(
        self, queue: asyncio.Queue[JobEvent] | None = None
    ) -> Iterator[asyncio.Queue[JobEvent]]:
        """A queue (`queue`, or a new one) receiving every event of every job until the block
        exits (admins)."""
        queue = asyncio.Queue() if queue is None else queue
        self._everything.add(queue)
        try:
            yield queue
        finally:
            self._everything.discard(queue)

    def subscriber_count(self, job_id: str | None = None) -> int:
        """Subscriptions to `job_id`; without one, those to owners' or all jobs."""
        if job_id is not None:
            return len(self._subscribers.get(job_id, ()))
        return sum(map(len, self._by_owner.values())) + len(self._everything)

    def dispatch(self, event: JobEvent | BatchEvent) -> None:
        """Hand an event to the local subscribers of its job or batch (also used when the
        broker is down, so this process's own changes still reach its subscribers)."""
        if isinstance(event, BatchEvent):
            for batch_queue in self._batches.get(event.batch_id, ()):
                batch_queue.put_nowait(event)
            return
        with job_context(event.job_id):
            for queue in self._subscribers.get(event.job_id, ()):
                queue.put_nowait(event)
            for queue in self._by_owner.get(event.owner, ()):
                queue.put_nowait(event)
            for queue in self._everything:
                queue.put_nowait(event)
            for listener in self.listeners:
                try:
                    listener(event)
                except Exception:
                    log.exception("event listener failed")

    def bridges(self) -> list[BridgeHeartbeat]:
        """The latest heartbeat of every bridge heard from recently, newest first."""
        return sorted(self._bridges.values(), key=lambda h: h.at, reverse=True)

    def record_heartbeat(self, heartbeat: BridgeHeartbeat) -> None:
        known = self._bridges.get(heartbeat.bridge_id)
        if known is None or heartbeat.at >= known.at:
            self._bridges[heartbeat.bridge_id] = heartbeat
        now = datetime.now(UTC)
        for bridge_id, seen in list(self._bridges.items()):
            if (now - seen.at).total_seconds() > FORGET_AFTER_S:
                del self._bridges[bridge_id]

    async def attach(self, broker: Broker) -> None:
        channel = await broker.connection.channel()
        assert isinstance(channel, AbstractRobustChannel)
        queue = await channel.declare_queue(self.queue_name, exclusive=True, auto_delete=True)
        await queue.bind(broker.topology.events)
        await queue.consume(self._on_message, no_ack=True)
        self._channel, self._queue = channel, queue
        self.attached.set()

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        if message.type == HEARTBEAT_TYPE:
            try:
                heartbeat = BridgeHeartbeat.decode(message.body)
            except ValidationError as exc:
                log.warning("dropping an undecodable bridge heartbeat: %s", exc)
                return
            self.record_heartbeat(heartbeat)
            return
        if message.type == BATCH_TYPE:
            try:
                batch = BatchEvent.decode(message.body)
            except ValidationError as exc:
                log.warning("dropping an undecodable batch event: %s", exc)
                return
            self.dispatch(batch)
            return
        try:
            event = JobEvent.decode(message.body)
        except ValidationError as exc:
            log.warning("dropping an undecodable job event: %s", exc)
            return
        if message.headers and tracing.TRACEPARENT in message.headers:
            # The event reaches its subscribers in its job's trace (`jobs.tracing`).
            attributes = {"job.id": event.job_id, "job.status": event.status.value}
            with tracing.span(
                "event relay", message.headers, kind=SpanKind.CONSUMER, attributes=attributes
            ):
                self.dispatch(event)
            return
        self.dispatch(event)

    async def close(self) -> None:
        self.attached.clear()
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()
        self._channel = self._queue = None
