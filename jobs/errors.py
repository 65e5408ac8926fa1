"""One exception tree: each class carries the `code` clients see.

The API turns these into GraphQL errors with `extensions.code`; the bridge turns them into a
FAILED job with the same code and message. Anything outside this tree is an internal error.
"""

from __future__ import annotations


class EngineError(Exception):
    code = "INTERNAL"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadInput(EngineError):
    code = "BAD_INPUT"


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


class UnsupportedFormat(BadInput):
    code = "UNSUPPORTED_FORMAT"


class NotFound(EngineError):
    code = "NOT_FOUND"


class FileNotFound(NotFound):
    def __init__(self, file_id: str) -> None:
        super().__init__(f"no audio file with id {file_id!r}")


class JobNotFound(NotFound):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"no job with id {job_id!r}")


class InvalidTransition(EngineError):
    code = "CONFLICT"


class PayloadTooLarge(EngineError):
    code = "PAYLOAD_TOO_LARGE"


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


class BrokerUnavailable(EngineError):
    code = "BROKER_UNAVAILABLE"


class Unauthenticated(EngineError):
    """No API key, or one that is unknown or revoked."""

    code = "UNAUTHENTICATED"


class QuotaExceeded(EngineError):
    code = "QUOTA_EXCEEDED"


class FileInUse(EngineError):
    """A file still read by a QUEUED or RUNNING job cannot be deleted."""

    code = "CONFLICT"


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
