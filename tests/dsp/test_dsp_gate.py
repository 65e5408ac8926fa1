"""The gate on espeak-ng phrases with room noise in the pauses."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.typing import NDArray

from dsp.chain import Chain
from dsp.gate import DETECTOR_MS, HYSTERESIS_DB, LOOKAHEAD_EXTRA_MS, Gate
from tests.speech import espeak, si_sdr


@pytest.fixture(scope="module")
def recording() -> tuple[NDArray[np.float64], list[tuple[int, int]], int]:
    """Three phrases with 1 s pauses of -70 dBFS room noise; returns (signal, phrase spans)."""
    rng = np.random.default_rng(0)
    pieces: list[NDArray[np.float64]] = []
    spans = []
    position = 0
    rate = 0
    for text in ("First phrase.", "Second phrase here.", "And the third."):
        x, rate = espeak(text)
        loud = np.flatnonzero(np.abs(x) > 0.01)
        phrase = 0.5 * x[loud[0] : loud[-1] + 1]
        pause = np.zeros(rate)
        pieces += [pause, phrase]
        spans.append((position + rate, position + rate + phrase.shape[0]))
        position += rate + phrase.shape[0]
    pieces.append(np.zeros(rate))
    signal = np.concatenate(pieces)
    return signal + 10 ** (-70 / 20) * rng.standard_normal(signal.shape[0]), spans, rate


def test_pauses_fall_forty_db_and_phrases_stay(
    recording: tuple[NDArray[np.float64], list[tuple[int, int]], int],
) -> None:
    x, spans, rate = recording
    y, _ = Chain([Gate()]).process_array(x[np.newaxis].astype(np.float32), rate)
    out = y[0].astype(np.float64)
    assert out.shape == x.shape
    # Pause middles (hold and release over): at least 40 dB quieter.
    edges = [0, *[s for span in spans for s in span], x.shape[0]]
    for start, end in zip(edges[::2], edges[1::2], strict=True):
        middle = slice(start + rate // 4, end - rate // 4)
        drop = 10 * np.log10(np.mean(x[middle] ** 2) / max(np.mean(out[middle] ** 2), 1e-30))
        assert drop >= 40.0, drop
    # Phrases, including their first consonant (lookahead) and last decay (hold, release).
    for start, end in spans:
        assert si_sdr(x[start:end], out[start:end]) >= 25.0


def test_block_size_independent_and_multichannel(
    recording: tuple[NDArray[np.float64], list[tuple[int, int]], int],
) -> None:
    x, _, rate = recording
    multi = np.stack([x, 0.5 * x, -x, 0.1 * x]).astype(np.float32)
    outs = [Chain([Gate()]).process_array(multi, rate, block_frames=b)[0] for b in (1, 777, 10**7)]
    assert outs[0].shape == multi.shape
    assert all(np.array_equal(outs[0], o) for o in outs[1:])
    np.testing.assert_allclose(outs[0][2], -outs[0][0], rtol=0, atol=0)  # one shared gain


def test_it_opens_before_the_onset() -> None:
    rate = 48_000
    x = np.zeros((1, rate), dtype=np.float32)
    x[0, rate // 2 :] = 0.5  # a step from silence
    y, _ = Chain([Gate(attack_ms=1.0)]).process_array(x, rate)
    assert y.shape == x.shape
    np.testing.assert_array_equal(
        y[0, rate // 2 : rate // 2 + 100], x[0, rate // 2 : rate // 2 + 100]
    )


def _reference(x, threshold_db, range_db, attack_ms, hold_ms, release_ms, rate):  # type: ignore[no-untyped-def]
    """The gate written out sample by sample, lookahead as a plain shift."""
    per_ms = rate / 1000
    lookahead = round((attack_ms + LOOKAHEAD_EXTRA_MS) * per_ms)
    open_level = 10 ** (threshold_db / 20)
    close_level = 10 ** ((threshold_db - HYSTERESIS_DB) / 20)
    up = range_db / max(attack_ms * per_ms, 1)
    down = range_db / max(release_ms * per_ms, 1)
    hold = round(hold_ms * per_ms)
    decay = math.exp(-1 / (DETECTOR_MS * per_ms))
    padded = np.concatenate([x, np.zeros((x.shape[0], lookahead))], axis=1)
    env, gain, is_open, left = 0.0, -range_db, False, 0
    gains = []
    for i in range(padded.shape[1]):
        env = max(float(np.max(np.abs(padded[:, i]))), decay * env)
        if env > open_level:
            is_open, left = True, hold
        elif is_open:
            if env >= close_level:
                left = hold
            elif left > 0:
                left -= 1
            else:
                is_open = False
        gain = min(0.0, gain + up) if is_open else max(-range_db, gain - down)
        gains.append(10 ** (gain / 20))
    return x * np.array(gains)[lookahead:]


def test_kernel_matches_a_sample_by_sample_reference() -> None:
    rate = 8000
    rng = np.random.default_rng(1)
    envelope = np.repeat([0.001, 0.3, 0.001, 0.02, 0.001], [800, 400, 900, 300, 1000])
    x = (rng.standard_normal((2, envelope.shape[0])) * envelope).astype(np.float32)
    params = (-30.0, 40.0, 2.0, 20.0, 50.0)
    y, _ = Chain([Gate(*params)]).process_array(x, rate, block_frames=500)
    np.testing.assert_allclose(
        y, _reference(x.astype(np.float64), *params, rate), rtol=1e-6, atol=1e-9
    )
