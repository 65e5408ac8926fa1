"""Error reporting, done once per result: `jobs.errors.EngineError`s become GraphQL errors
with `extensions.code`; anything else is logged and masked, so internals never leak. Server
paths are cut out of every message a client sees (`without_paths`): a library's "Error
opening '/srv/data/storage/tmp/x.part'" says what went wrong, never where things are stored."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from strawberry.extensions import SchemaExtension

from jobs.errors import EngineError, InternalServerError, InvalidRequest, without_paths

log = logging.getLogger(__name__)

INTERNAL_CODE = InternalServerError.code
INTERNAL_MESSAGE = "Internal server error."
REQUEST_CODE = InvalidRequest.code


def report(error: GraphQLError) -> GraphQLError:
    """The error a client sees for `error` (idempotent: coded errors pass through)."""
    original = error.original_error
    if isinstance(original, EngineError):
        return _copy(error, without_paths(original.message), original.code)
    if original is None or isinstance(original, GraphQLError):
        if error.extensions and "code" in error.extensions:
            return error
        return _copy(error, error.message, REQUEST_CODE)
    log.error("unexpected error in %s", error.path, exc_info=original)
    return _copy(error, INTERNAL_MESSAGE, INTERNAL_CODE)


def _copy(error: GraphQLError, message: str, code: str) -> GraphQLError:
    return GraphQLError(
        message=message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=None,
        extensions={**(error.extensions or {}), "code": code},
    )


def _rewrite(result: Any) -> None:
    errors = getattr(result, "errors", None)
    if errors:
        result.errors = [report(e) for e in errors]


class EngineErrors(SchemaExtension):
    """Like `strawberry.extensions.MaskErrors`, but keeps the engine's own error codes."""

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        _rewrite(result)
        _rewrite(getattr(result, "initial_result", None))

    def on_stream_result(self, result: Any) -> Iterator[None]:
        _rewrite(result)
        yield None


def error_response(exc: EngineError, headers: dict[str, str] | None = None) -> JSONResponse:
    """`{"code", "message"}` with the error's HTTP status (REST routes and middleware); the
    message names no file-system path."""
    sent = {"WWW-Authenticate": "Bearer"} if exc.http_status == 401 else {}
    sent.update(headers or {})
    return JSONResponse(
        {"code": exc.code, "message": without_paths(exc.message)},
        exc.http_status,
        headers=sent or None,
    )


async def engine_error_response(request: Request, exc: Exception) -> Response:
    """The REST routes' counterpart of `EngineErrors`: `{"code", "message"}` with a fitting
    HTTP status."""
    assert isinstance(exc, EngineError)
    if exc.http_status >= 500:
        log.error("unexpected engine error on %s", request.url.path, exc_info=exc)
    return error_response(exc)
