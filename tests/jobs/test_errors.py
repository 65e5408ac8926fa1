"""The error tree: every class keeps its code, status and message through pickling (Ray
carries an actor's error to the pool that way), whatever its constructor takes."""

from __future__ import annotations

import pickle

import pytest

from jobs import errors
from jobs.errors import EngineError

ALL = sorted(
    (c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, EngineError)),
    key=lambda c: c.__name__,
)
EXAMPLES: dict[type[EngineError], EngineError] = {
    errors.UnknownEffect: errors.UnknownEffect("wah"),
    errors.UnknownParam: errors.UnknownParam("gain", ["x", "y"]),
    errors.MissingParam: errors.MissingParam("gain", "db"),
    errors.ParamOutOfRange: errors.ParamOutOfRange("gain", "db", 99.0, "-60..24"),
    errors.FileNotFound: errors.FileNotFound("f1"),
    errors.JobNotFound: errors.JobNotFound("j1"),
    errors.PresetNotFound: errors.PresetNotFound("p"),
    errors.ApiKeyNotFound: errors.ApiKeyNotFound("k"),
}


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_every_error_survives_pickling_with_its_code_and_status(cls: type[EngineError]) -> None:
    error = EXAMPLES.get(cls) or cls("something went wrong")
    error.extra = 7  # type: ignore[attr-defined]  # instance state travels too
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is cls
    assert (back.code, back.http_status, back.message) == (cls.code, cls.http_status, error.message)
    assert str(back) == str(error) and back.extra == 7  # type: ignore[attr-defined]


def test_codes_are_upper_snake_case_and_statuses_are_http() -> None:
    for cls in ALL:
        assert cls.code.replace("_", "").isalpha() and cls.code.isupper(), cls
        assert 400 <= cls.http_status <= 599, cls
    assert errors.NotFound.http_status == 404 and errors.Unauthenticated.http_status == 401
    assert errors.FileInUse.code == errors.InvalidTransition.code == "CONFLICT"
