"""The one mapping from exceptions to ack / reject / requeue."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import OperationalError

from bridge.outcomes import Disposition, disposition
from jobs.errors import (
    BrokerUnavailable,
    ContractError,
    InvalidTransition,
    JobCancelled,
    JobNotFound,
    JobTimeout,
    ProcessingFailed,
    StorageMisconfigured,
    StorageUnavailable,
    UnknownParam,
    UnsupportedAudio,
    WorkerLost,
)
from jobs.states import JobStatus
from jobs.store import terminal_status


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (ContractError("bad"), Disposition.REJECT),
        (JobNotFound("j"), Disposition.REJECT),
        (ProcessingFailed("x"), Disposition.ACK),
        (UnsupportedAudio("x"), Disposition.ACK),
        (JobTimeout("x"), Disposition.ACK),
        (WorkerLost("x"), Disposition.ACK),
        (JobCancelled("x"), Disposition.ACK),
        (UnknownParam("gain", ["x"]), Disposition.ACK),
        (InvalidTransition("x"), Disposition.ACK),
        (BrokerUnavailable("x"), Disposition.REQUEUE),
        (StorageUnavailable("s3://b is not reachable"), Disposition.REQUEUE),
        (StorageMisconfigured("the bucket of s3://b does not exist"), Disposition.ACK),
        (OperationalError("select", {}, Exception("database is locked")), Disposition.REQUEUE),
        (OSError("disk"), Disposition.REQUEUE),
    ],
)
def test_disposition(exc: BaseException, expected: Disposition) -> None:
    assert disposition(exc) is expected


def test_cancel_ends_cancelled_everything_else_failed() -> None:
    assert terminal_status(JobCancelled("x")) is JobStatus.CANCELLED
    assert terminal_status(JobTimeout("x")) is JobStatus.FAILED
