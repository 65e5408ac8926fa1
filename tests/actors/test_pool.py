"""Which actor deaths a job is blamed for: the retry decision in `ActorPool.run`.

The texts are Ray 2.60's own (its GCS's death causes); the fault tests in
tests/bridge/test_bridge_faults.py and tests/actors/test_worker.py produce them for real.
"""

from __future__ import annotations

import pytest
from ray.exceptions import ActorUnavailableError, RayActorError

from actors.pool import _not_its_own, _reason

HEAD = "The actor died unexpectedly before finishing this task.\n\tclass_name: DspWorker\n"
CRASHED = (
    HEAD + "The actor is dead because its worker process has died. Worker exit type: "
    "SYSTEM_ERROR Worker exit detail: Worker unexpectedly exits with a connection error code 2."
)


@pytest.mark.parametrize(
    "cause",
    [
        "The actor is dead because it was killed by `ray.kill`.",
        "The actor died because its node has died. Node Id: 1234",
        "The actor is dead because its owner has died. Owner Id: 99",
        "The actor is dead because all references to the actor were removed.",
    ],
)
def test_deaths_from_outside_the_job_are_not_its_own(cause: str) -> None:
    assert _not_its_own(RayActorError(error_msg=HEAD + cause))


def test_an_unreachable_or_preempted_actor_is_not_the_jobs_doing() -> None:
    assert _not_its_own(ActorUnavailableError("temporarily unavailable", None))
    assert _not_its_own(RayActorError(error_msg=CRASHED, preempted=True))


def test_a_crashed_process_may_be_the_jobs_doing() -> None:
    assert not _not_its_own(RayActorError(error_msg=CRASHED))
    assert not _not_its_own(RayActorError(error_msg="The actor died unexpectedly."))


def test_the_reason_is_ray_s_cause_in_one_line() -> None:
    assert _reason(RayActorError(error_msg=CRASHED)) == (
        "The actor is dead because its worker process has died (SYSTEM_ERROR)"
    )
    killed = RayActorError(
        error_msg=HEAD + "The actor is dead because it was killed by `ray.kill`."
    )
    assert _reason(killed) == "The actor is dead because it was killed by `ray.kill`"
