"""RabbitMQ topology and publishing, shared by the API and the bridge.

Topology (declared idempotently by every process that connects):

- `<prefix>.jobs`: quorum queue of job messages (`jobs.contract.JobMessage`), delivery limit
  `Settings.delivery_limit`, dead-lettering to exchange `<prefix>.dlx` (direct), which routes
  to queue `<prefix>.jobs.dead`.
- `<prefix>.events`: fanout exchange of `JobEvent`s, and of `BridgeHeartbeat`s (AMQP message
  type `heartbeat`); every API replica binds its own exclusive queue, so all replicas see
  every event and every bridge.
- `<prefix>.control`: fanout exchange of `ControlMessage`s (cancel) from the API to every
  bridge; the bridge running the job acts.

Connections are robust: after a broker restart aio-pika reconnects, re-declares and
re-subscribes on its own.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import aio_pika
from aio_pika.abc import (
    AbstractExchange,
    AbstractQueue,
    AbstractRobustChannel,
    AbstractRobustConnection,
)

from jobs.contract import BridgeHeartbeat, ControlMessage
from jobs.errors import BrokerUnavailable
from jobs.settings import Settings

log = logging.getLogger(__name__)

HEARTBEAT_TYPE = "heartbeat"
"""AMQP message type of a `BridgeHeartbeat` on the events exchange (job events have none)."""
BATCH_TYPE = "batch"
"""AMQP message type of a `BatchEvent` on the events exchange."""


@dataclass(slots=True)
class Topology:
    jobs: AbstractQueue
    dead: AbstractQueue
    dlx: AbstractExchange
    events: AbstractExchange
    control: AbstractExchange


async def declare(channel: AbstractRobustChannel, settings: Settings) -> Topology:
    dlx = await channel.declare_exchange(
        settings.dead_letter_exchange, aio_pika.ExchangeType.DIRECT, durable=True
    )
    dead = await channel.declare_queue(
        settings.dead_letter_queue, durable=True, arguments={"x-queue-type": "quorum"}
    )
    await dead.bind(dlx, routing_key=settings.jobs_queue)
    jobs = await channel.declare_queue(
        settings.jobs_queue,
        durable=True,
        arguments={
            "x-queue-type": "quorum",
            "x-delivery-limit": settings.delivery_limit,
            "x-dead-letter-exchange": settings.dead_letter_exchange,
            "x-dead-letter-routing-key": settings.jobs_queue,
        },
    )
    events = await channel.declare_exchange(
        settings.events_exchange, aio_pika.ExchangeType.FANOUT, durable=True
    )
    control = await channel.declare_exchange(
        settings.control_exchange, aio_pika.ExchangeType.FANOUT, durable=True
    )
    return Topology(jobs=jobs, dead=dead, dlx=dlx, events=events, control=control)


class Broker:
    """One robust connection and a confirming channel for publishing.

    >>> broker = await Broker.connect(Settings())       # doctest: +SKIP
    >>> await broker.publish_job(message.encode())      # returns once the broker confirmed
    """

    def __init__(
        self,
        settings: Settings,
        connection: AbstractRobustConnection,
        channel: AbstractRobustChannel,
        topology: Topology,
    ) -> None:
        self.settings = settings
        self.connection = connection
        self.channel = channel
        self.topology = topology

    @classmethod
    async def connect(cls, settings: Settings, timeout: float = 10.0) -> Broker:
        """Connect and declare; `BrokerUnavailable` says how to start RabbitMQ if it is down."""
        try:
            connection = await asyncio.wait_for(
                aio_pika.connect_robust(settings.rabbitmq_url), timeout
            )
        except (OSError, TimeoutError, aio_pika.exceptions.AMQPError) as exc:
            raise BrokerUnavailable(
                f"cannot reach RabbitMQ at {_redact(settings.rabbitmq_url)} ({exc!r}). "
                "Start one with `rabbitmq-server -detached` (Debian/Ubuntu: "
                "`apt-get install rabbitmq-server`), or `docker run -d -p 5672:5672 "
                "-p 15672:15672 rabbitmq:3-management`, or point RABBITMQ_URL at yours."
            ) from exc
        channel = await connection.channel(publisher_confirms=True)
        assert isinstance(channel, AbstractRobustChannel)
        topology = await declare(channel, settings)
        return cls(settings, connection, channel, topology)

    @property
    def connected(self) -> bool:
        return not self.connection.is_closed and self.connection.connected.is_set()

    async def publish_job(self, body: bytes, *, headers: dict[str, str] | None = None) -> None:
        """Publish a job message persistently; returns after the broker's confirm.
        `headers`: its trace's (`jobs.tracing`)."""
        await self.channel.default_exchange.publish(
            aio_pika.Message(
                body,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                content_type="application/json",
                headers=dict(headers or {}),
            ),
            routing_key=self.settings.jobs_queue,
            timeout=10,
        )

    async def publish_event(
        self, body: bytes, kind: str | None = None, *, headers: dict[str, str] | None = None
    ) -> None:
        """Publish an encoded `JobEvent` (or, with `kind=BATCH_TYPE`, a `BatchEvent`), made
        by `jobs.store` and relayed by `jobs.outbox`; events are transient, rows are the
        record. `headers`: its trace's (`jobs.tracing`)."""
        await self.topology.events.publish(
            aio_pika.Message(
                body, content_type="application/json", type=kind, headers=dict(headers or {})
            ),
            routing_key="",
            timeout=10,
        )

    async def publish_heartbeat(self, heartbeat: BridgeHeartbeat) -> None:
        """Publish a bridge heartbeat on the events exchange, typed so relays tell it apart."""
        await self.topology.events.publish(
            aio_pika.Message(
                heartbeat.encode(), content_type="application/json", type=HEARTBEAT_TYPE
            ),
            routing_key="",
            timeout=10,
        )

    async def publish_control(self, message: ControlMessage) -> None:
        await self.topology.control.publish(
            aio_pika.Message(message.encode(), content_type="application/json"),
            routing_key="",
            timeout=10,
        )

    async def close(self) -> None:
        await self.connection.close()


def _redact(url: str) -> str:
    if "@" not in url:
        return url
    scheme, rest = url.split("://", 1) if "://" in url else ("", url)
    return f"{scheme}://***@{rest.split('@', 1)[1]}"
