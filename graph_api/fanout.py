"""Job events rendered once, sent to many: the websocket side of `myJobUpdates`.

Strawberry executes a subscription's selection set for every subscriber and every event,
then encodes the result once per subscriber: with hundreds of subscribers of one owner that
is hundreds of identical results per event. When a subscription selects only plain fields of
`JobEvent` (no resolver, so nothing that depends on who asks), its result depends on the
event, the document and the variables alone. `SharedFrames` renders it once per such triple
(through the schema's own executor, so shapes, aliases, fragments, `@include`/`@skip` and
scalar encoding are Strawberry's) and every subscriber sends the same text, with its own
operation `id`, straight to its websocket as a graphql-transport-ws `next` message.

Where the server offers it (`SEND_SOON`, an ASGI scope extension of the API's own websocket
protocol, `graph_api.serving`), a subscriber with nothing waiting does not even wake: the
relay hands each event to its `DirectQueue`, which writes the frame into the connection's
buffer at once, and the buffer goes to the socket once per loop turn (a burst of events is
one write per subscriber, not one per event). Anything else (the key's re-check is due, the
client reads too slowly, an event is still waiting) queues the event for the subscriber's
own task as before, and no event overtakes one queued before it.

Everything else stays per subscriber and in the resolver: the relay routes each event to its
owner's queues only, and every subscriber re-checks its own key before each event (a revoked
key still ends its stream with `UNAUTHENTICATED`). A selection with a resolver field (`job`),
a transport other than graphql-transport-ws, or a result with errors goes through Strawberry
as before.

>>> stream = FrameStream.of(info)                    # doctest: +SKIP
>>> if stream is None or not await stream.send(event): yield to_graphql(event)
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from graphql import DocumentNode, ExecutionResult, GraphQLSchema, OperationDefinitionNode
from graphql.execution import Executor, execute_subscription_event
from starlette.websockets import WebSocket
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.types import Info
from strawberry.types.nodes import FragmentSpread, InlineFragment, SelectedField, Selection

from jobs import contract

log = logging.getLogger(__name__)

SEND_SOON = "audio_engine.websocket.send_soon"
"""ASGI scope extension: a callable taking a text message and returning whether it was
buffered for the socket (written at the end of the loop turn), False when it must go the
ASGI way (closing, or the client's reads lag: the ASGI send waits for them)."""

RENDERED = 1024
"""Results kept (event x document x variables): an event reaches all its subscribers within
a few loop turns, so a miss after eviction only costs one more rendering."""

OPERATION: ContextVar[Operation[Any, Any] | None] = ContextVar("fanout_operation", default=None)
"""The graphql-transport-ws operation whose task runs this resolver (set by `FanoutHandler`)."""

Root = Callable[[contract.JobEvent], object]
"""Makes the GraphQL object (the subscription's yield) of an event."""


class FanoutWebSocket(ASGIWebSocketAdapter):
    """Strawberry's ASGI websocket, with a way to send text encoded already."""

    ws: WebSocket

    async def send_text(self, text: str) -> None:
        await self.ws.send_text(text)


class FanoutHandler(BaseGraphQLTransportWSHandler[Any, Any]):
    """graphql-transport-ws where each operation's task knows its operation, so a resolver
    can send `next` messages for it (`FrameStream`)."""

    async def run_operation(self, operation: Operation[Any, Any]) -> None:
        OPERATION.set(operation)  # in the operation's own task: no other operation sees it
        await super().run_operation(operation)


@dataclass(frozen=True, slots=True)
class Document:
    """A subscription's document and variables: what its result depends on besides the
    event. `key` is the same for every subscription of the same text and variables (the
    schema's parser cache hands them one parsed document)."""

    operation: OperationDefinitionNode
    document: DocumentNode
    operation_name: str | None
    variables: dict[str, Any] | None
    schema: GraphQLSchema
    executor: type[Executor[Any]]

    @property
    def key(self) -> tuple[int, str | None, str]:
        variables = json.dumps(self.variables, sort_keys=True, default=str)
        return id(self.operation), self.operation_name, variables


@dataclass(frozen=True, slots=True)
class _Rendered:
    event: contract.JobEvent  # held, so their ids are not reused while the entry lives
    operation: OperationDefinitionNode
    payload: str | None


class SharedFrames:
    """The `next` payloads (JSON text) rendered lately, by event and document."""

    def __init__(self, maxsize: int = RENDERED) -> None:
        self.maxsize = maxsize
        self.renders = 0
        self.direct = 0
        self._rendered: OrderedDict[tuple[int, tuple[int, str | None, str]], _Rendered] = (
            OrderedDict()
        )

    def payload(
        self, event: contract.JobEvent, document: Document, key: Any, root: Root, context: object
    ) -> str | None:
        """`{"data": ...}` of `document` (whose `key` is given) for `event`; None when
        rendering gave errors (then Strawberry should run it and report them)."""
        entry = self._rendered.get((id(event), key))
        if entry is None or entry.event is not event or entry.operation is not document.operation:
            payload = self._render(document, root(event), context)
            entry = _Rendered(event, document.operation, payload)
            self._rendered[id(event), key] = entry
            if len(self._rendered) > self.maxsize:
                self._rendered.popitem(last=False)
        return entry.payload

    def _render(self, document: Document, root: object, context: object) -> str | None:
        self.renders += 1
        executor = document.executor.build(
            document.schema,
            document.document,
            context_value=context,
            raw_variable_values=document.variables,
            operation_name=document.operation_name,
        )
        if isinstance(executor, list):
            return None
        result = execute_subscription_event(executor.build_per_event_executor(root))
        if not isinstance(result, ExecutionResult) or result.errors:
            return None
        return json.dumps({"data": result.data}, separators=(",", ":"))


FRAMES = SharedFrames()
"""This process's shared renderings (as its parsed documents are shared)."""


class FrameStream:
    """One subscription sending shared renderings as its own `next` messages."""

    def __init__(
        self,
        operation: Operation[Any, Any],
        websocket: FanoutWebSocket,
        document: Document,
        root: Root,
        context: object,
        frames: SharedFrames = FRAMES,
    ) -> None:
        self.operation = operation
        self.websocket = websocket
        self.document = document
        self.key = document.key
        self.root = root
        self.context = context
        self.frames = frames
        self._head = '{"id":' + json.dumps(operation.id) + ',"type":"next","payload":'
        extensions = websocket.ws.scope.get("extensions") or {}
        self._send_soon: Callable[[str], bool] | None = extensions.get(SEND_SOON)

    @classmethod
    def of(cls, info: Info[Any, Any], yields: type, root: Root) -> FrameStream | None:
        """A stream for the subscription `info` resolves (yielding `yields` objects made by
        `root`), if it may share renderings: run by `FanoutHandler`, and selecting only
        fields of `yields` without a resolver."""
        operation = OPERATION.get()
        if operation is None:
            return None
        websocket = operation.handler.websocket
        if not isinstance(websocket, FanoutWebSocket):
            return None
        if not _plain(_children(info.selected_fields), _plain_fields(info, yields)):
            return None
        raw = info._raw_info
        document = Document(
            raw.operation,
            DocumentNode(definitions=(raw.operation, *raw.fragments.values())),
            operation.operation_name,
            operation.variables or None,
            raw.schema,
            info.schema.execution_context_class,
        )
        return cls(operation, websocket, document, root, info.context)

    def queue(self, fresh: Callable[[], bool]) -> asyncio.Queue[contract.JobEvent]:
        """The queue to subscribe with: a `DirectQueue` where the server can take frames
        outside ASGI (`fresh` tells whether the subscriber's key needs no re-check now)."""
        if self._send_soon is None:
            return asyncio.Queue()
        return DirectQueue(self, fresh)

    def send_now(self, event: contract.JobEvent) -> bool:
        """Buffer `event`'s `next` message on the socket without waiting; False when it
        must go through the subscriber's task instead."""
        if self._send_soon is None:
            return False
        if self.operation.completed:
            return True  # the client stopped this operation: nothing more goes out
        payload = self.frames.payload(event, self.document, self.key, self.root, self.context)
        if payload is None or not self._send_soon(self._head + payload + "}"):
            return False
        self.frames.direct += 1
        return True

    async def send(self, event: contract.JobEvent) -> bool:
        """Send `event` as this operation's `next` message; False when it must go through
        Strawberry instead (rendering gave errors)."""
        payload = self.frames.payload(event, self.document, self.key, self.root, self.context)
        if payload is None:
            return False
        if not self.operation.completed:
            await self.websocket.send_text(self._head + payload + "}")
        return True


class DirectQueue(asyncio.Queue[contract.JobEvent]):
    """A subscriber's queue that sends an event straight to the socket when the subscriber
    holds nothing (no event queued, none taken and not yet sent) and its key is fresh, so
    the subscriber's task does not wake for it. The task calls `done` after sending each
    event it took."""

    def __init__(self, stream: FrameStream, fresh: Callable[[], bool]) -> None:
        super().__init__()
        self._stream = stream
        self._fresh = fresh
        self._held = False

    def put_nowait(self, item: contract.JobEvent) -> None:
        if not self._held and self.empty() and self._fresh():
            try:
                if self._stream.send_now(item):
                    return
            except Exception:  # the task's own path will raise it where it can be reported
                log.exception("sending an event directly failed; queued instead")
        super().put_nowait(item)

    def get_nowait(self) -> contract.JobEvent:
        item = super().get_nowait()
        self._held = True
        return item

    def done(self) -> None:
        """The event last taken is sent: later ones may go directly again."""
        self._held = False


_PLAIN: dict[type, frozenset[str]] = {}


def _plain_fields(info: Info[Any, Any], yields: type) -> frozenset[str]:
    """The GraphQL names of `yields`' fields that have no resolver."""
    known = _PLAIN.get(yields)
    if known is None:
        convert = info.schema.config.name_converter.get_graphql_name
        fields = yields.__strawberry_definition__.fields  # type: ignore[attr-defined]
        known = frozenset({"__typename", *(convert(f) for f in fields if f.base_resolver is None)})
        _PLAIN[yields] = known
    return known


def _children(selections: Iterable[Selection]) -> list[Selection]:
    return [child for s in selections for child in s.selections]


def _plain(selections: Iterable[Selection], plain: frozenset[str]) -> bool:
    """Whether `selections` reach only `plain` leaf fields, through fragments."""
    for selection in selections:
        if isinstance(selection, SelectedField):
            if selection.name not in plain or selection.selections:
                return False
        elif isinstance(selection, FragmentSpread | InlineFragment) and not _plain(
            selection.selections, plain
        ):
            return False
    return True
