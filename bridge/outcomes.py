"""What happens to a broker message when handling it raised: the one place that decides.

- ACK: the job's outcome is known and recorded (it failed, timed out, was cancelled...); the
  bridge moves on to the next job.
- REJECT: the message itself is unusable; it is dead-lettered, never retried.
- REQUEUE: infrastructure trouble (database, broker, object store); another try may succeed,
  and the quorum queue's delivery limit dead-letters a message that keeps failing.
"""

from __future__ import annotations

from enum import StrEnum

from jobs.errors import (
    BrokerUnavailable,
    ContractError,
    EngineError,
    JobNotFound,
    StorageUnavailable,
)


class Disposition(StrEnum):
    ACK = "ack"
    REJECT = "reject"
    REQUEUE = "requeue"


_RULES: dict[type[BaseException], Disposition] = {
    ContractError: Disposition.REJECT,
    JobNotFound: Disposition.REJECT,  # a message for a job no database knows
    BrokerUnavailable: Disposition.REQUEUE,
    StorageUnavailable: Disposition.REQUEUE,  # the store is away: not the job's fault
    EngineError: Disposition.ACK,  # the job's own failure: record it and move on
}


def disposition(exc: BaseException) -> Disposition:
    """The rule of the nearest class in `exc`'s MRO; anything unknown is infrastructure."""
    for cls in type(exc).__mro__:
        if cls in _RULES:
            return _RULES[cls]
    return Disposition.REQUEUE
