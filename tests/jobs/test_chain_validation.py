"""`parse_chain` given the input's length refuses the steps that would leave nothing, before a
job is queued, and names the step and the lengths involved."""

from __future__ import annotations

from typing import Any

import pytest

from jobs.effects import parse_chain
from jobs.errors import BadInput

RATE = 48_000
LOUDNESS = {"normalize": {"mode": "LOUDNESS", "target": -14}}


@pytest.mark.parametrize(
    ("chain", "frames", "words"),
    [
        ([{"trim": {"startS": 1.0}}], RATE, "effects[0] trim.startS = 1 s starts at or past"),
        ([{"gain": {"db": 1}}, {"trim": {"startS": 5}}], RATE, "effects[1] trim"),
        ([{"trim": {"startS": 0.5}}, {"trim": {"startS": 0.5}}], RATE, "effects[1] trim"),
        ([{"trim": {"startS": 0.2, "endS": 0.1}}], None, "must be greater than startS"),
        ([{"resample": {"rate": 8000}}], 1, "gives no frames"),
        ([{"resample": {"rate": 8000}}], 2, "gives no frames"),
        ([LOUDNESS], RATE * 4 // 10 - 1, "needs at least 400 ms"),
        ([{"trim": {"startS": 0.7}}, LOUDNESS], RATE, "effects[1] normalize LOUDNESS"),
        ([{"reverb": {"tail": False}}, LOUDNESS], 1000, "needs at least 400 ms"),
    ],
)
def test_steps_that_leave_nothing_are_refused(
    chain: list[dict[str, Any]], frames: int | None, words: str
) -> None:
    with pytest.raises(BadInput, match=words.replace("[", r"\[").replace("]", r"\]")) as caught:
        parse_chain(chain, RATE, None if frames is None else frames / RATE)
    assert caught.value.code == "BAD_INPUT"


@pytest.mark.parametrize(
    ("chain", "frames"),
    [
        ([{"trim": {"startS": 0.99}}], RATE),
        ([{"resample": {"rate": 8000}}], 3),  # soxr gives 1 frame for half of one
        ([{"resample": {"rate": 44_100}}], 1),
        ([LOUDNESS], RATE * 4 // 10),
        ([{"resample": {"rate": 8000}}, LOUDNESS], RATE * 4 // 10),
        # Tails of signal-dependent length: only the run can tell, so nothing is refused.
        ([{"delay": {}}, {"trim": {"startS": 5}}], 10),
        ([{"reverb": {}}, LOUDNESS], 10),
        ([{"trim": {"startS": 5}}], None),  # length unknown (a preset being saved)
    ],
)
def test_chains_that_leave_something_pass(chain: list[dict[str, Any]], frames: int | None) -> None:
    assert len(parse_chain(chain, RATE, None if frames is None else frames / RATE)) == len(chain)
