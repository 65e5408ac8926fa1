"""`/graphql`: Strawberry's FastAPI router with the engine's rules at its edges.

- Subscriptions speak graphql-transport-ws only. A client asking for the legacy
  `graphql-ws` protocol is refused at connect (close code 4406, "Subprotocol not
  acceptable"), and a `connection_init` without a live key closes the socket with 4403
  (Forbidden) before any document is parsed.
- A multipart upload's `map` may only point at `variables.<name>` (or into lists and
  objects inside it, by index or key) where the operation holds a placeholder: anything else is
  a 400 naming the bad path, checked before Strawberry puts the files in place.
- `myJobUpdates` selecting only plain fields is rendered once per event and document and
  sent as text to every subscriber (`graph_api.fanout`): the handler and websocket classes
  below let a resolver do that for its own operation.
- GraphiQL is served from `graph_api/static/graphiql.html` with pinned copies of its
  scripts (`static/vendor/`), under a Content-Security-Policy that runs no script from
  elsewhere.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from cross_web import AsyncHTTPRequestAdapter, HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse
from strawberry.exceptions import ConnectionRejectionError
from strawberry.fastapi import GraphQLRouter
from strawberry.file_uploads.utils import replace_placeholders_with_files
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.unset import UNSET, UnsetType

from graph_api.context import Context, get_context
from graph_api.fanout import FanoutHandler, FanoutWebSocket
from graph_api.schema import schema
from graph_api.web import CONTENT_SECURITY_POLICY, NO_CACHE, STATIC_DIR
from jobs.errors import Unauthenticated

GRAPHIQL_PAGE = (STATIC_DIR / "graphiql.html").read_text()


class BadFileMap(ValueError):
    pass


def _placeholder_of(operations: object, path: object) -> None:
    """`BadFileMap` unless `path` names an existing spot under `variables`."""
    if not isinstance(path, str):
        raise BadFileMap(f"a map path must be a string, not {json.dumps(path)}")
    keys = path.split(".")
    if len(keys) < 2 or keys[0] != "variables":
        raise BadFileMap(f"map path {path!r} must start with 'variables.<name>'")
    target: object = operations
    for depth, key in enumerate(keys):
        if isinstance(target, Mapping) and key in target:
            target = target[key]
        elif isinstance(target, list) and key.isdecimal() and int(key) < len(target):
            target = target[int(key)]
        else:
            where = ".".join(keys[:depth]) or "the operation"
            raise BadFileMap(
                f"map path {path!r} does not name a placeholder: {where} has no {key!r}"
            )


def check_file_map(operations: object, files_map: object, files: Mapping[str, Any]) -> None:
    """The graphql-multipart-request-spec `map`, checked against the operation and files."""
    if not isinstance(operations, Mapping):
        raise BadFileMap("'operations' must be one JSON object (batches are not accepted)")
    if not isinstance(files_map, Mapping):
        raise BadFileMap("'map' must be a JSON object of file field -> list of paths")
    for field, paths in files_map.items():
        if field not in files:
            raise BadFileMap(f"map names file field {field!r}, which the request lacks")
        if not isinstance(paths, list) or not paths:
            raise BadFileMap(f"map entry {field!r} must be a non-empty list of paths")
        for path in paths:
            _placeholder_of(operations, path)


class GraphQLEndpoint(GraphQLRouter[Context, None]):
    graphql_transport_ws_handler_class = FanoutHandler
    websocket_adapter_class = FanoutWebSocket

    def __init__(self, auth_enabled: bool) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql",
            context_getter=get_context,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            multipart_uploads_enabled=True,
        )
        self.auth_enabled = auth_enabled

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        if self.auth_enabled:
            try:
                await context.principal()
            except Unauthenticated as exc:
                raise ConnectionRejectionError(
                    {"message": exc.message, "extensions": {"code": exc.code}}
                ) from exc
        unset: UnsetType = UNSET
        return unset

    async def parse_multipart(self, request: AsyncHTTPRequestAdapter) -> dict[str, str]:
        try:
            form_data = await request.get_form_data()
        except ValueError as e:
            raise HTTPException(400, "Unable to parse the multipart body") from e
        try:
            operations = _json(form_data.form.get("operations", "{}"), "operations")
            files_map = _json(form_data.form.get("map", "{}"), "map")
            check_file_map(operations, files_map, form_data.files)
        except BadFileMap as e:
            raise HTTPException(400, f"Invalid multipart upload: {e}") from e
        return replace_placeholders_with_files(operations, files_map, form_data.files)

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        return HTMLResponse(
            GRAPHIQL_PAGE,
            headers={**NO_CACHE, "Content-Security-Policy": CONTENT_SECURITY_POLICY},
        )


def _json(value: object, field: str) -> Any:
    if not isinstance(value, str | bytes):
        raise BadFileMap(f"'{field}' must be a JSON text field")
    try:
        return json.loads(value)
    except ValueError as e:
        raise BadFileMap(f"'{field}' is not valid JSON") from e
