"""How a job's failure crosses from an actor to the pool.

`EngineError` subclasses with their own `__init__` (`UnknownParam(effect, names)`...) cannot be
unpickled from their message alone, so an actor raises `RemoteJobError` (code, message, class
name: always picklable) and the pool turns it back into the original class, or into a
`ProcessingFailed` that keeps the original `code`.
"""

from __future__ import annotations

from typing import Any

from jobs import errors
from jobs.errors import EngineError, ProcessingFailed


class RemoteJobError(Exception):
    """A job's own failure, as sent by an actor."""

    def __init__(self, code: str, message: str, kind: str) -> None:
        super().__init__(code, message, kind)
        self.code = code
        self.message = message
        self.kind = kind

    def __reduce__(self) -> tuple[Any, ...]:
        return (RemoteJobError, (self.code, self.message, self.kind))

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    @classmethod
    def from_exception(cls, exc: BaseException) -> RemoteJobError:
        """Wrap anything an actor's job raised; non-engine errors become PROCESSING_FAILED."""
        if isinstance(exc, EngineError):
            return cls(exc.code, exc.message, type(exc).__name__)
        return cls(ProcessingFailed.code, f"{type(exc).__name__}: {exc}", "ProcessingFailed")

    def to_engine_error(self) -> EngineError:
        """The original class when it can be rebuilt from a message, else `ProcessingFailed`
        carrying the original code."""
        cls = getattr(errors, self.kind, None)
        if isinstance(cls, type) and issubclass(cls, EngineError):
            try:
                rebuilt = cls(self.message)
            except TypeError:
                pass
            else:
                if rebuilt.code == self.code:
                    return rebuilt
        failed = ProcessingFailed(self.message)
        failed.code = self.code
        return failed
