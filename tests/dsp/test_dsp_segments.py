"""Segments rendered apart and joined give what the unsegmented Chain gives, effect by effect.

The reference is `Chain.process_array` over the whole signal, which is what the CLI's
`process` runs block by block. Tolerances are the issue's: bit-identical for sample-local
effects, 1e-5 absolute for the rest (float32 outputs; the pre-roll bounds push the state
error to 1e-12, so what remains is FFT and float32 rounding).
"""

from collections.abc import Callable, Iterator

import numpy as np
import pytest

from dsp import (
    EQ,
    Chain,
    Channels,
    Compressor,
    Delay,
    Effect,
    EqBand,
    Fade,
    Gain,
    Gate,
    Limiter,
    LoudnessNormalize,
    Normalize,
    Resample,
    Reverb,
    Trim,
    preset,
)
from dsp.segments import (
    effect_needs,
    measure_segment,
    merged,
    plan_segments,
    render_segment,
    settle,
    two_pass,
)

SR = 8000
SEGMENT = 10 * SR
SECONDS = 42.0


def _music(channels: int = 2, seconds: float = SECONDS, seed: int = 3) -> np.ndarray:
    """Tones under a slow loudness envelope with bursts, so dynamics effects move."""
    rng = np.random.default_rng(seed)
    n = int(SR * seconds)
    t = np.arange(n) / SR
    env = 0.05 + 0.95 * np.abs(np.sin(2 * np.pi * 0.13 * t)) ** 3
    rows = [
        env * (0.5 * np.sin(2 * np.pi * (110 + 70 * c) * t) + 0.3 * rng.standard_normal(n))
        for c in range(channels)
    ]
    return np.ascontiguousarray(np.array(rows, dtype=np.float32))


def _segmented(make: Callable[[], list[Effect]], x: np.ndarray, block: int = 1500) -> np.ndarray:
    chain = Chain(make())
    chain.configure(SR, x.shape[0])
    plan = plan_segments(chain, SR, x.shape[1], SEGMENT)
    assert len(plan.segments) == 4, plan.reason

    def read(a: int, b: int) -> Iterator[np.ndarray]:
        for s in range(a, b, block):
            yield x[:, s : min(s + block, b)]

    def fresh(levels: list) -> Chain:  # type: ignore[type-arg]
        """A segment's own chain (its own actor: nothing shared but parameters and the
        merged measurements), settled on what was measured so far."""
        chain = Chain(make())
        settle(chain, levels)
        return chain

    levels: list = []  # type: ignore[type-arg]
    for _phase in range(plan.measures):
        found = [
            measure_segment(fresh(levels), read, plan, segment, SR, x.shape[0], x.shape[1])
            for segment in reversed(plan.segments)  # in any order: they are independent
        ][::-1]
        levels.append(merged(found))
    parts: list[np.ndarray] = []
    for segment in plan.segments:
        render_segment(fresh(levels), read, plan, segment, SR, x.shape[0], x.shape[1], parts.append)
    return np.concatenate(parts, axis=1)


def _whole(make: Callable[[], list[Effect]], x: np.ndarray) -> np.ndarray:
    y, _ = Chain(make()).process_array(x, SR, block_frames=4096)
    return y


SAMPLE_LOCAL: dict[str, Callable[[], list[Effect]]] = {
    "gain": lambda: [Gain(-4.5)],
    "channels": lambda: [Channels("mono")],
    "fade": lambda: [Fade(in_ms=7000, out_ms=9000, curve="sine")],
    "gain+fade+channels": lambda: [Gain(3.0), Fade(1500, 2500), Channels("swap")],
}

LINEAR: dict[str, Callable[[], list[Effect]]] = {
    "eq": lambda: [
        EQ(
            [
                EqBand("highpass", 30.0),
                EqBand("peak", 60.0, q=8.0, gain_db=9.0),
                EqBand("highshelf", 2000.0, gain_db=-6.0),
            ]
        )
    ],
    "delay": lambda: [Delay(time_ms=120.0, feedback=0.4, mix=0.4, ping_pong=True)],
    "reverb hall": lambda: [Reverb(preset("hall", SR), mix=0.35)],
    "reverb cut tail": lambda: [Reverb(preset("room", SR), mix=0.5, pre_delay_ms=40, tail=False)],
}

NONLINEAR: dict[str, Callable[[], list[Effect]]] = {
    "compressor": lambda: [Compressor(-24.0, 4.0, attack_ms=5.0, release_ms=250.0, knee_db=6)],
    "limiter": lambda: [Limiter(-6.0, release_ms=80.0, lookahead_ms=5.0)],
    "eq+hall+compressor+limiter": lambda: [
        EQ([EqBand("lowshelf", 120.0, gain_db=3.0), EqBand("peak", 3000.0, q=1.0, gain_db=-2)]),
        Reverb(preset("hall", SR), mix=0.3),
        Compressor(-20.0, 3.0, attack_ms=10.0, release_ms=120.0, makeup_db=2.0),
        Limiter(-1.0, release_ms=60.0, lookahead_ms=5.0),
        Fade(2000, 3000),
    ],
}


TWO_PASS: dict[str, Callable[[], list[Effect]]] = {
    "normalize peak": lambda: [Normalize(mode="peak", target=-1.0)],
    "normalize loudness": lambda: [Normalize(mode="loudness", target=-20.0)],
    "loudness": lambda: [LoudnessNormalize(-14.0, -1.0)],
    "eq+hall+compressor+loudness+fade": lambda: [
        EQ([EqBand("lowshelf", 120.0, gain_db=3.0)]),
        Reverb(preset("hall", SR), mix=0.3),
        Compressor(-20.0, 3.0, attack_ms=10.0, release_ms=120.0),
        LoudnessNormalize(-9.0, -1.0),  # loud enough that the true-peak limiter works
        Fade(2000, 3000),
    ],
    "normalize then loudness": lambda: [
        Normalize(mode="peak", target=-6.0),
        Delay(time_ms=120.0, feedback=0.4, mix=0.4),
        LoudnessNormalize(-16.0, -2.0),
        Limiter(-3.0, release_ms=60.0),
    ],
}


@pytest.mark.parametrize("name", SAMPLE_LOCAL)
def test_sample_local_effects_are_bit_identical(name: str) -> None:
    x = _music()
    y = _segmented(SAMPLE_LOCAL[name], x)
    np.testing.assert_array_equal(y, _whole(SAMPLE_LOCAL[name], x))


@pytest.mark.parametrize("name", [*LINEAR, *NONLINEAR])
def test_linear_and_stateful_effects_match_within_1e_5(name: str) -> None:
    make = LINEAR.get(name) or NONLINEAR[name]
    x = _music()
    y, reference = _segmented(make, x), _whole(make, x)
    assert y.shape == reference.shape
    np.testing.assert_allclose(y, reference, rtol=0, atol=1e-5)
    assert np.max(np.abs(reference)) > 0.1  # the comparison is about a real signal


@pytest.mark.parametrize("name", TWO_PASS)
def test_two_pass_effects_measure_in_parts_and_match_within_1e_5(name: str) -> None:
    make = TWO_PASS[name]
    x = _music()
    y, reference = _segmented(make, x), _whole(make, x)
    assert y.shape == reference.shape
    np.testing.assert_allclose(y, reference, rtol=0, atol=1e-5)
    assert np.max(np.abs(reference)) > 0.1


@pytest.mark.parametrize("rate", [SR, 11_025])
def test_merged_loudness_is_the_unsplit_measurement(rate: int) -> None:
    """The BS.1770 gating blocks over the joined 100 ms steps of the parts are the unsplit
    stream's: the integrated loudness agrees to float rounding, and the gain with it. At
    11025 Hz the steps are 1102 and 1103 frames long in turn."""
    x = _music(seconds=41.37 * rate / SR)  # 41.37 s at `rate`: the last step is partial

    def make() -> list[Effect]:
        return [EQ([EqBand("peak", 300.0, q=2.0, gain_db=6.0)]), LoudnessNormalize(-23.0, -1.0)]

    chain = Chain(make())
    chain.configure(rate, 2)
    plan = plan_segments(chain, rate, x.shape[1], 10 * rate)
    assert plan.measures == 1 and len(plan.segments) == 4

    def read(a: int, b: int) -> Iterator[np.ndarray]:
        yield x[:, a:b]

    levels = [
        measure_segment(Chain(make()), read, plan, s, rate, 2, x.shape[1]) for s in plan.segments
    ]
    whole = Chain(make())
    whole.process_array(x, rate)
    effect = whole.effects[1]
    assert isinstance(effect, LoudnessNormalize)
    split = Chain(make())
    settle(split, [merged(levels)])
    settled = split.effects[1]
    assert isinstance(settled, LoudnessNormalize)
    assert settled.measured_lufs == pytest.approx(effect.measured_lufs, abs=1e-9)
    assert -40.0 < effect.measured_lufs < 0.0
    assert two_pass(split) == [] and two_pass(whole) == [1] and settled.reason == ""
    meter = merged(levels).meter
    assert meter is not None
    assert meter.frames == x.shape[1]
    assert meter.block_powers().size == (x.shape[1] * 10 // rate) - 3


def test_the_dynamics_really_work_across_boundaries() -> None:
    """A pre-roll too short shows: the compressor from a cold state misses by far more than
    1e-5 at a boundary, so the match above is the pre-roll's doing."""
    make = NONLINEAR["compressor"]
    x = _music()
    chain = Chain(make())
    chain.configure(SR, 2)
    plan = plan_segments(chain, SR, x.shape[1], SEGMENT)
    cold = Chain(make()).process_array(x[:, plan.segments[1].start :], SR)[0]
    whole = _whole(make, x)[:, plan.segments[1].start :]
    assert np.max(np.abs(cold[:, :200] - whole[:, :200])) > 1e-3


@pytest.mark.parametrize("preroll_s", [1.0, 5.0, 19.0])
def test_no_preroll_settles_a_gate(preroll_s: float) -> None:
    """Why the gate is refused: a burst opens it, and a tone between its close (-46 dB) and
    open (-40 dB) levels then keeps it open for good; a run started anywhere after the burst
    stays closed however long its pre-roll, so no bound makes the segments match."""
    t = np.arange(int(40 * SR)) / SR
    x = (10 ** (-43 / 20) * np.sin(2 * np.pi * 1000.0 * t)).astype(np.float32)
    x[: SR // 2] *= 100.0  # the burst: +40 dB for half a second
    x = np.ascontiguousarray(np.stack([x, x]))

    def make() -> list[Effect]:
        return [Gate(threshold_db=-40.0, range_db=40.0)]

    whole = _whole(make, x)
    start = 20 * SR
    warm = start - int(preroll_s * SR)
    late = Chain(make()).process_array(np.ascontiguousarray(x[:, warm:]), SR)[0]
    tail = whole[:, start:]
    assert np.max(np.abs(tail)) > 0.005  # open in the whole run...
    assert np.max(np.abs(late[:, start - warm :])) < 0.001  # ...closed from any later start


@pytest.mark.parametrize(
    ("effects", "says"),
    [
        ([Gate(threshold_db=-40.0)], "between its close and open thresholds"),
        ([Trim(1.0, 20.0)], "trim moves time"),
        ([Resample(rate=16000)], "changes the frame rate"),
        ([Compressor(-20.0, 4.0, attack_ms=5.0, release_ms=5000.0)], "pre-roll"),
    ],
)
def test_chains_that_cannot_split_run_whole_and_say_why(effects: list[Effect], says: str) -> None:
    chain = Chain(effects)
    chain.configure(SR, 2)
    plan = plan_segments(chain, SR, int(SECONDS * SR), SEGMENT)
    assert len(plan.segments) == 1
    assert plan.segments[0].last and plan.segments[0].end == int(SECONDS * SR)
    assert says in plan.reason


def test_a_preroll_longer_than_a_segment_makes_fewer_longer_segments() -> None:
    """A 1 s release needs about 34 s of pre-roll: 10 s segments become 34 s ones, and the
    match holds as for any segment."""
    make = lambda: [Compressor(-24.0, 4.0, attack_ms=5.0, release_ms=1000.0)]  # noqa: E731
    chain = Chain(make())
    chain.configure(SR, 2)
    x = _music(seconds=110.0)
    plan = plan_segments(chain, SR, x.shape[1], SEGMENT)
    assert len(plan.segments) == 3 and plan.reason.startswith("fewer, longer segments: ")
    assert "33.8 s of pre-roll, more than a 10 s segment" in plan.reason
    assert all(s.end - s.start >= plan.preroll for s in plan.segments)

    def read(a: int, b: int) -> Iterator[np.ndarray]:
        yield x[:, a:b]

    parts: list[np.ndarray] = []
    for segment in plan.segments:
        render_segment(Chain(make()), read, plan, segment, SR, 2, x.shape[1], parts.append)
    np.testing.assert_allclose(np.concatenate(parts, axis=1), _whole(make, x), rtol=0, atol=1e-5)


def test_short_streams_and_zero_segment_length_are_not_split() -> None:
    chain = Chain([Gain(1.0)])
    chain.configure(SR, 2)
    assert len(plan_segments(chain, SR, 2 * SEGMENT, SEGMENT).segments) == 1
    assert len(plan_segments(chain, SR, 10 * SEGMENT, 0).segments) == 1
    plan = plan_segments(chain, SR, 2 * SEGMENT + 1, SEGMENT)
    assert len(plan.segments) == 2 and plan.reason == ""


def test_boundaries_fall_on_loudness_steps() -> None:
    chain = Chain([Gain(0.0)])
    rate = 44_100
    chain.configure(rate, 2)
    plan = plan_segments(chain, rate, 3_601 * rate + 17, 300 * rate)
    assert len(plan.segments) == 12
    for segment in plan.segments[1:]:
        assert segment.start % (rate // 10) == 0
    assert [s.end for s in plan.segments[:-1]] == [s.start for s in plan.segments[1:]]


def test_preroll_bounds_follow_the_time_constants() -> None:
    slow = Compressor(-20.0, 4.0, attack_ms=5.0, release_ms=1000.0)
    fast = Compressor(-20.0, 4.0, attack_ms=5.0, release_ms=100.0)
    for c in (slow, fast):
        c.configure(48_000, 2)
    s, f = effect_needs(slow, 48_000), effect_needs(fast, 48_000)
    assert not isinstance(s, str) and not isinstance(f, str)
    assert 9.5 < s.preroll / f.preroll < 10.5
    limiter = Limiter(-1.0, release_ms=50.0, lookahead_ms=5.0)
    limiter.configure(48_000, 2)
    needs = effect_needs(limiter, 48_000)
    assert not isinstance(needs, str) and needs.postroll == 240
