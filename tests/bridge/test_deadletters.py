"""Reading why a message was dead-lettered and which job it belonged to."""

from __future__ import annotations

import json

from bridge.deadletters import death_reason, diagnose
from jobs.contract import JobMessage
from jobs.errors import ContractError, DeliveryLimit

MESSAGE = JobMessage(
    job_id="j1",
    input_key="in/a.wav",
    output_key="out/j1.wav",
    output_format="WAV",
    output_subtype="FLOAT",
    effects=[{"gain": {"db": 1.0}}],
)


def test_death_reason_from_either_header() -> None:
    assert death_reason({"x-first-death-reason": "delivery_limit"}) == "delivery_limit"
    assert death_reason({"x-death": [{"reason": b"rejected"}]}) == "rejected"
    assert death_reason({}) == "unknown"


def test_delivery_limit_of_a_valid_message() -> None:
    job_id, error = diagnose(MESSAGE.encode(), "delivery_limit")
    assert job_id == "j1" and isinstance(error, DeliveryLimit)
    assert error.code == "DELIVERY_LIMIT" and "delivery limit" in error.message


def test_unreadable_message_keeps_its_job_id_when_it_has_one() -> None:
    body = json.loads(MESSAGE.encode())
    body["version"] = 7
    job_id, error = diagnose(json.dumps(body).encode(), "rejected")
    assert job_id == "j1" and isinstance(error, ContractError) and error.code == "BAD_MESSAGE"
    assert "unknown contract version 7" in error.message
    assert diagnose(b"\xff garbage", "rejected")[0] is None
