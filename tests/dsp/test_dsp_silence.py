"""Silence cutting on espeak-ng speech with pauses of known length."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from dsp.chain import Chain, uncut_time
from dsp.edits import Trim
from dsp.silence import Silence, equal_power, quiet_kernel
from tests.speech import espeak

PAUSES_S = (1.5, 0.6, 2.5, 1.2)
"""Pauses inserted between phrases: three are longer than the default 1 s, one is not."""


@pytest.fixture(scope="module")
def phrases() -> tuple[list[NDArray[np.float64]], int]:
    parts = []
    rate = 0
    for text in ("Hello there.", "This is a test.", "Of silence cutting.", "In speech.", "Done."):
        x, rate = espeak(text)
        # Trim espeak's own lead-in and tail, so the inserted pauses are the pauses.
        loud = np.flatnonzero(np.abs(x) > 0.01)
        parts.append(x[loud[0] : loud[-1] + 1])
    return parts, rate


def _with_pauses(parts: list[NDArray[np.float64]], rate: int, seed: int = 0) -> NDArray[np.float64]:
    rng = np.random.default_rng(seed)
    out = [parts[0]]
    for pause, part in zip(PAUSES_S, parts[1:], strict=True):
        out += [1e-4 * rng.standard_normal(round(pause * rate)), part]  # -80 dBFS room noise
    return 0.5 * np.concatenate(out)


def test_long_pauses_are_cut_to_keep_ms_one_edit_each(
    phrases: tuple[list[NDArray[np.float64]], int],
) -> None:
    parts, rate = phrases
    x = _with_pauses(parts, rate)
    chain = Chain([Silence()])
    y, _ = chain.process_array(np.stack([x, -x]).astype(np.float32), rate, block_frames=4096)
    removed = sum(p - 0.3 for p in PAUSES_S if p > 1.0)
    assert abs(y.shape[1] / rate - (x.shape[0] / rate - removed)) < 0.3
    edits = chain.cuts()
    assert len(edits) == 3
    # Each cut lies inside its pause, in input time.
    starts = np.cumsum([0.0] + [len(p) / rate for p in parts[:-1]]) + np.cumsum((0.0, *PAUSES_S))
    pauses = [(starts[i] + len(parts[i]) / rate, starts[i + 1]) for i in range(len(PAUSES_S))]
    long_pauses = [p for p, length in zip(pauses, PAUSES_S, strict=True) if length > 1.0]
    for (cut_start, cut_end), (pause_start, pause_end) in zip(edits, long_pauses, strict=True):
        assert pause_start < cut_start < cut_end < pause_end
    # Every phrase is still there, whole: its samples appear unchanged in the output.
    for part in parts:
        loud = 0.5 * part[: rate // 10].astype(np.float32)
        hits = np.flatnonzero(np.isclose(y[0], loud[0], atol=0, rtol=0))
        assert any(np.array_equal(y[0, h : h + loud.shape[0]], loud) for h in hits)


def test_cuts_are_click_free_and_block_size_independent(
    phrases: tuple[list[NDArray[np.float64]], int],
) -> None:
    parts, rate = phrases
    x = _with_pauses(parts, rate, seed=1).astype(np.float32)
    stereo = np.stack([x, 0.5 * x, -x])
    outs = [
        Chain([Silence(keep_ms=100)]).process_array(stereo, rate, block_frames=b)[0]
        for b in (7, 1000, 1 << 20)
    ]
    assert all(np.array_equal(outs[0], o) for o in outs[1:])
    # No step between neighbouring samples bigger than the speech itself makes.
    assert np.max(np.abs(np.diff(outs[0], axis=1))) <= np.max(np.abs(np.diff(stereo, axis=1)))


def test_an_all_silent_input_is_cut_to_keep_ms() -> None:
    chain = Chain([Silence(keep_ms=300)])
    y, _ = chain.process_array(np.zeros((2, 48_000 * 3), dtype=np.float32), 48_000)
    assert y.shape == (2, 14_400)
    assert chain.cuts() == [(0.15, 2.85)]


def test_keep_ms_zero_leaves_an_all_silent_input_its_first_frame() -> None:
    """Cut to keep_ms=0, a stream that is one pause would be empty, which FLAC and MP3 cannot
    hold: its first frame stays, the cut starts after it. Any block size gives the same."""
    rng = np.random.default_rng(6)
    x = (1e-4 * rng.standard_normal((2, 48_000 * 3))).astype(np.float32)  # -80 dBFS room
    for block in (1, 999, 1 << 20):
        chain = Chain([Silence(keep_ms=0)])
        y, _ = chain.process_array(x, 48_000, block_frames=block)
        assert np.array_equal(y, x[:, :1])
        assert chain.cuts() == [(1 / 48_000, 3.0)]
    # With sound in it the stream is cut to the sound alone, nothing added.
    x[:, 72_000:84_000] = 0.3  # 1.5 s of pause, 0.25 s of sound, 1.25 s of pause
    y, _ = Chain([Silence(keep_ms=0)]).process_array(x, 48_000)
    assert y.shape[1] < 12_000 + 2 * 480 + 1 and np.max(y) == np.float32(0.3)


def test_short_pauses_and_no_pauses_make_no_edits() -> None:
    rng = np.random.default_rng(3)
    x = (0.2 * rng.standard_normal((1, 48_000))).astype(np.float32)
    x[:, 20_000 : 50_000 - 20_000] = 0.0  # 0.2 s pause
    chain = Chain([Silence()])
    y, _ = chain.process_array(x, 48_000)
    assert np.array_equal(y, x)
    assert chain.cuts() == []


def test_later_cuts_are_reported_in_input_time() -> None:
    assert uncut_time([(1.0, 3.0)], 0.5) == 0.5
    assert uncut_time([(1.0, 3.0)], 2.0) == 4.0
    x = np.zeros((1, 8000 * 4), dtype=np.float32)
    x[:, 8000 : 8000 + 800] = 0.5  # 1.0..1.1 s loud, silence around it
    chain = Chain([Silence(keep_ms=200), Silence(min_silence_ms=100, keep_ms=100)])
    y, _ = chain.process_array(x, 8000)
    cuts = chain.cuts()
    # First silence: only the 2.9 s tail is long enough. Second: the 1 s lead-in, and what is
    # left of the tail (0.2 s, shortened to 0.1 s), mapped back past the first cut.
    assert len(cuts) == 3
    assert 0.0 < cuts[0][0] < cuts[0][1] < 1.0
    assert all(1.1 < start < end <= 4.0 for start, end in cuts[1:])
    # The two tail cuts overlap in input time: together they cover what the output lost.
    covered = np.zeros(x.shape[1], dtype=bool)
    for start, end in cuts:
        covered[round(start * 8000) : round(end * 8000)] = True
    assert abs(int(covered.sum()) - (x.shape[1] - y.shape[1])) <= 2
    # After a trim, cuts are still reported in the time of the chain's input.
    trimmed = Chain([Trim(start_s=0.5), Silence(keep_ms=200)])
    trimmed.process_array(x, 8000)
    untrimmed = Chain([Silence(keep_ms=200)])
    untrimmed.process_array(x, 8000)
    assert len(trimmed.cuts()) == 1
    assert trimmed.cuts()[0] == pytest.approx(untrimmed.cuts()[0], abs=1e-9)
    assert trimmed.cuts()[0] == pytest.approx((1.21, 3.9), abs=0.001)


def test_quiet_detector_matches_a_moving_average() -> None:
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((2, 500)) * np.repeat([0.001, 0.5, 0.001], [200, 50, 250])).astype(
        np.float32
    )
    size, threshold = 16, 1e-4
    power = np.mean(x.astype(np.float64) ** 2, axis=0)
    window = np.convolve(np.concatenate([np.zeros(size - 1), power]), np.ones(size), "valid")
    expected = window / size < threshold
    state = (np.zeros(size), np.zeros(1), np.zeros(1, dtype=np.int64))
    got = np.concatenate(
        [
            quiet_kernel(x[:, :123].copy(), threshold, *state),
            quiet_kernel(x[:, 123:].copy(), threshold, *state),
        ]
    )
    # The running sum may differ from the direct one in the last bits, never in a decision
    # away from the threshold.
    near = np.abs(window / size - threshold) < 1e-9
    assert np.array_equal(got[~near], expected[~near])


def test_equal_power_crossfade_keeps_constant_power() -> None:
    a = np.ones((1, 64), dtype=np.float32)
    b = np.ones((1, 64), dtype=np.float32)
    mixed = equal_power(a, np.zeros_like(b)) ** 2 + equal_power(np.zeros_like(a), b) ** 2
    np.testing.assert_allclose(mixed, 1.0, rtol=1e-6)
