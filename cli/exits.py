"""The exit codes every `audio-engine` command shares, so scripts can tell failures apart.

| code | meaning |
|---|---|
| 0 | done |
| 1 | anything else (an internal error, a refused key) |
| 2 | usage: unknown command or option (argparse's own) |
| 3 | bad input: an unreadable file, an invalid chain, a refused parameter, a bad storage URL |
| 4 | a server, the broker or the object store could not be reached |
| 5 | the job ran and failed, or was cancelled |
"""

from __future__ import annotations

import json

from jobs.errors import (
    BadInput,
    BrokerUnavailable,
    EngineError,
    NotFound,
    PayloadTooLarge,
    StorageUnavailable,
    UnsupportedAudio,
    UnsupportedFormat,
)

OK = 0
ERROR = 1
USAGE = 2
BAD_INPUT = 3
UNREACHABLE = 4
JOB_FAILED = 5

# Codes a server answers with that mean "what you sent is wrong", as the CLI's own checks do.
BAD_INPUT_CODES = frozenset(
    e.code for e in (BadInput, UnsupportedAudio, UnsupportedFormat, PayloadTooLarge, NotFound)
)


def for_error(exc: BaseException) -> int:
    """The exit code for an error a command stopped on."""
    if isinstance(exc, BrokerUnavailable | StorageUnavailable | ConnectionError | TimeoutError):
        return UNREACHABLE
    if isinstance(exc, BadInput | UnsupportedAudio | NotFound):
        return BAD_INPUT
    if isinstance(exc, EngineError):
        return BAD_INPUT if exc.code in BAD_INPUT_CODES else ERROR
    if isinstance(exc, json.JSONDecodeError | FileNotFoundError | IsADirectoryError):
        return BAD_INPUT
    return ERROR
