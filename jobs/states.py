"""Job states and the only legal ways between them."""

from __future__ import annotations

from enum import StrEnum

from jobs.errors import InvalidTransition


class JobStatus(StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})

# RUNNING -> QUEUED is a retry after a lost worker or a requeue on shutdown; RUNNING ->
# RUNNING is another attempt, when the message of a job whose bridge died comes back.
_ALLOWED: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.FAILED, JobStatus.CANCELLED}),
    JobStatus.RUNNING: frozenset(
        {
            JobStatus.QUEUED,
            JobStatus.RUNNING,
            JobStatus.SUCCEEDED,
            JobStatus.FAILED,
            JobStatus.CANCELLED,
        }
    ),
    JobStatus.SUCCEEDED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
}


def can_transition(current: JobStatus, new: JobStatus) -> bool:
    return new in _ALLOWED[current]


def sources(new: JobStatus) -> frozenset[JobStatus]:
    """The states from which a job may become `new`."""
    return frozenset(s for s in JobStatus if can_transition(s, new))


def check_transition(current: JobStatus, new: JobStatus) -> None:
    """Raise `InvalidTransition` unless `current -> new` is legal."""
    if not can_transition(current, new):
        raise InvalidTransition(f"a {current.value} job cannot become {new.value}")
