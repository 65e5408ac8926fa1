"""The checked-in SDL must match the code (regenerate: `python -m graph_api.schema`)."""

from __future__ import annotations

from graph_api.schema import SDL_PATH, main, sdl


def test_schema_file_matches_code() -> None:
    assert SDL_PATH.read_text() == sdl(), "run `python -m graph_api.schema` and commit the result"
    assert main(["--check"]) == 0


def test_generated_inputs_follow_the_specs() -> None:
    text = sdl()
    gain_doc = '"""Gain in decibels. Unit: dB. Allowed: >= -120 and <= 60."""'
    assert f"input GainInput {{\n  {gain_doc}\n  db: Float!\n}}" in text
    assert "input EffectInput @oneOf {" in text
    assert "q: Float! = 0.7071" in text
    assert "gainDb: Float! = 0" in text
    assert "kind: EqKind!\n" in text
    assert "endS: Float = null" in text
    assert "mode: NormalizeMode! = PEAK" in text
