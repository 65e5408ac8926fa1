"""One exception tree: each class carries the `code` clients see and its HTTP status.

The API turns these into GraphQL errors with `extensions.code` (and REST responses with
`http_status`); the bridge turns them into a FAILED job with the same code and message.
Anything outside this tree is an internal error. An error survives pickling whatever its
`__init__` takes (`__reduce__`), so an actor raises it as it is and Ray hands the same class
back to the pool.

>>> import pickle
>>> err = pickle.loads(pickle.dumps(UnknownParam("gain", ["x"])))
>>> type(err).__name__, err.code, err.message
('UnknownParam', 'BAD_INPUT', 'gain: unknown parameter(s) x')
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

# A quoted text with a slash and no blank ('/srv/x.part', "data/storage/in/a.wav"), or an
# absolute path standing alone: what libraries (libsndfile, OSError) put in their messages.
_QUOTED_PATH = re.compile(r"""(['"])[^'"\s]*/[^'"\s]*\1""")
_BARE_PATH = re.compile(r"(?<![\w/:.~-])/(?:[\w.~-]+/)+[\w.~-]*")
HIDDEN_PATH = "the file"


def without_paths(message: str) -> str:
    """`message` with file-system paths replaced by "the file"."""
    return _BARE_PATH.sub(HIDDEN_PATH, _QUOTED_PATH.sub(HIDDEN_PATH, message))


class EngineError(Exception):
    code: ClassVar[str] = "INTERNAL"
    http_status: ClassVar[int] = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:
        # Subclasses build their message from other arguments: rebuild from the message.
        return (_rebuilt, (type(self), self.message), self.__dict__)


def _rebuilt(cls: type[EngineError], message: str) -> EngineError:
    error = cls.__new__(cls)
    EngineError.__init__(error, message)
    return error


class InternalServerError(EngineError):
    """What a client sees of an error outside this tree: nothing of it but this code."""

    code = "INTERNAL_SERVER_ERROR"


class InvalidRequest(EngineError):
    """A GraphQL document that does not parse or validate against the schema (or its
    limits)."""

    code = "GRAPHQL_VALIDATION_FAILED"
    http_status = 400


class BadInput(EngineError):
    code = "BAD_INPUT"
    http_status = 400


class UnknownEffect(BadInput):
    def __init__(self, name: str) -> None:
        super().__init__(f"unknown effect {name!r}")


class UnknownParam(BadInput):
    def __init__(self, effect: str, names: list[str]) -> None:
        super().__init__(f"{effect}: unknown parameter(s) {', '.join(names)}")


class MissingParam(BadInput):
    def __init__(self, effect: str, name: str) -> None:
        super().__init__(f"{effect}: parameter {name!r} is required")


class ParamOutOfRange(BadInput):
    def __init__(self, effect: str, name: str, value: object, allowed: str) -> None:
        super().__init__(f"{effect}.{name} = {value!r} is out of range: must be {allowed}")


class QueryTooComplex(BadInput):
    """A GraphQL document whose fragments expand past what the API validates."""

    code = "QUERY_TOO_COMPLEX"


class UnsupportedAudio(EngineError):
    code = "UNSUPPORTED_AUDIO"
    http_status = 415


class UnsupportedFormat(BadInput):
    code = "UNSUPPORTED_FORMAT"


class NotFound(EngineError):
    code = "NOT_FOUND"
    http_status = 404


class FileNotFound(NotFound):
    def __init__(self, file_id: str) -> None:
        super().__init__(f"no audio file with id {file_id!r}")


class JobNotFound(NotFound):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"no job with id {job_id!r}")


class BatchNotFound(NotFound):
    def __init__(self, batch_id: str) -> None:
        super().__init__(f"no batch with id {batch_id!r}")


class InvalidTransition(EngineError):
    code = "CONFLICT"
    http_status = 409


class IdempotencyConflict(InvalidTransition):
    """An `Idempotency-Key` reused for a different request, or while its first request still
    runs."""


class PayloadTooLarge(EngineError):
    code = "PAYLOAD_TOO_LARGE"
    http_status = 413


class BodyTooSlow(EngineError):
    """A request body that arrives slower than `Settings`' minimum rate (slowloris)."""

    code = "REQUEST_TIMEOUT"
    http_status = 408


class CsrfPrevented(BadInput):
    """A "simple" cross-site POST without a header a browser would have to preflight."""

    code = "CSRF_PREVENTED"


class ContractError(EngineError):
    """A broker message this version cannot read; it is dead-lettered, never retried."""

    code = "BAD_MESSAGE"


class ProcessingFailed(EngineError):
    """The DSP run raised: the input turned out undecodable, a parameter was impossible..."""

    code = "PROCESSING_FAILED"


class JobTimeout(EngineError):
    code = "TIMEOUT"


class JobCancelled(EngineError):
    code = "CANCELLED"


class WorkerLost(EngineError):
    """The actor running the job died more often than the retry bound allows."""

    code = "WORKER_LOST"


class PoisonInput(EngineError):
    """The job crashed the process of the actor running it twice: it is not tried again,
    so it cannot take more of the pool down."""

    code = "POISON_INPUT"


class DeliveryLimit(EngineError):
    """The job's message was delivered `Settings.delivery_limit` times without an outcome."""

    code = "DELIVERY_LIMIT"


class BrokerUnavailable(EngineError):
    code = "BROKER_UNAVAILABLE"
    http_status = 503


class StorageNotShared(EngineError):
    """Several Ray nodes but storage not declared shared: outputs would land on random nodes."""

    code = "CONFIGURATION"


class Unauthenticated(EngineError):
    """No API key, or one that is unknown or revoked."""

    code = "UNAUTHENTICATED"
    http_status = 401


class QuotaExceeded(EngineError):
    code = "QUOTA_EXCEEDED"
    http_status = 429


class FileInUse(InvalidTransition):
    """A file still read by a QUEUED or RUNNING job cannot be deleted."""


class PresetNotFound(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"no preset named {name!r}")


class ApiKeyNotFound(NotFound):
    def __init__(self, which: str) -> None:
        super().__init__(f"no API key with id or name {which!r}")


class StorageMisconfigured(BadInput):
    """`AUDIO_ENGINE_STORAGE_URL` names an unknown scheme, a missing bucket, or the store
    refuses our credentials: retrying will not help, the configuration must change."""


class StorageUnavailable(EngineError):
    """The object store did not answer (network, DNS, a 5xx): it may come back."""

    code = "STORAGE_UNAVAILABLE"
    http_status = 503


class UrlRefused(BadInput):
    """A URL the server will not fetch or send to: another scheme, or an address the SSRF
    guard refuses (`jobs.urls`)."""


class UrlUnreachable(EngineError):
    """A URL whose host does not resolve, refuses the connection, or answers with an error."""

    code = "URL_UNREACHABLE"
    http_status = 502


class UrlTimeout(EngineError):
    """A URL that did not connect, answer, or send its body within the configured times."""

    code = "URL_TIMEOUT"
    http_status = 504


class RedirectLoop(BadInput):
    """A URL whose redirects come back to one already followed, or go on too long."""

    code = "REDIRECT_LOOP"
