"""Every effect spec is bound to a kernel, with the right rate after a resample."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from actors.binding import BINDINGS, build_chain
from dsp.convolution import PartitionedIR
from jobs.effects import SPECS, parse_chain


def test_every_spec_has_a_binding() -> None:
    assert set(BINDINGS) == set(SPECS)


def _impulse(rates: list[int]):  # type: ignore[no-untyped-def]
    def impulses(name: str, rate: int) -> tuple[NDArray[np.float32], PartitionedIR | None]:
        rates.append(rate)
        ir = np.zeros((2, 32), dtype=np.float32)
        ir[:, 0] = 1.0
        return ir, None

    return impulses


def test_every_effect_builds_and_runs_with_its_defaults() -> None:
    chain_json = [
        {"gain": {"db": -3}},
        {"normalize": {"target": -1}},
        {"loudness": {"standard": "EBU_R128"}},
        {"eq": {"bands": [{"kind": "PEAK", "frequency": 1000, "gainDb": 3}]}},
        {"delay": {}},
        {"reverb": {}},
        {"compressor": {}},
        {"limiter": {}},
        {"fade": {"inMs": 10, "outMs": 10, "curve": "SINE"}},
        {"trim": {"startS": 0.01}},
        {"resample": {"rate": 44100}},
        {"channels": {"mode": "MONO"}},
        {"denoise": {}},
        {"denoise": {"profile": {"startS": 0.0, "endS": 0.1}}},
        {"silence": {}},
        {"gate": {}},
    ]
    calls = parse_chain(chain_json, 48_000)
    assert {c.name for c in calls} == set(SPECS)
    chain = build_chain(calls, 48_000, _impulse([]))
    x = (0.1 * np.random.default_rng(1).standard_normal((2, 4800))).astype(np.float32)
    out, rate = chain.process_array(x, 48_000, block_frames=1024)
    assert rate == 44_100
    assert out.shape[0] == 1 and out.shape[1] > 0


def test_reverb_after_resample_gets_the_new_rate() -> None:
    rates: list[int] = []
    calls = parse_chain(
        [{"reverb": {}}, {"resample": {"rate": 22050}}, {"reverb": {"impulse": "hall"}}], 48_000
    )
    build_chain(calls, 48_000, _impulse(rates))
    assert rates == [48_000, 22_050]
