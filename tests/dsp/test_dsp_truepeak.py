"""True peak: EBU Tech 3341 cases, the oversampling factor, ffmpeg's ebur128 meter, and the
true-peak limiter."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from dsp.loudness import LoudnessMeter
from dsp.truepeak import TruePeakLimiter, TruePeakMeter, interpolator, oversampling_factor
from tests import ebur128
from tests.loudness_signals import music_like, speech_like

# Tech 3341's true-peak tolerance: +0.2 / -0.4 dB.
TP_HIGH, TP_LOW = 0.2, 0.4


def _true_peak(x: np.ndarray, sr: int, block: int = 4096) -> float:
    meter = TruePeakMeter(sr, x.shape[0])
    for s in range(0, x.shape[1], block):
        meter.add(x[:, s : s + block])
    return meter.true_peak_db()


def _tp_sine(sr: int, freq: float, level_db: float, phase_deg: float, seconds: float = 1.0):  # type: ignore[no-untyped-def]
    """Stereo sine with a 10 ms fade-in: the steady state is what the cases specify, an abrupt
    start would add its own (real) overshoot."""
    n = np.arange(int(sr * seconds))
    fade = np.minimum(1.0, n / (0.01 * sr))
    x = 10 ** (level_db / 20) * fade * np.sin(2 * np.pi * freq * n / sr + np.radians(phase_deg))
    return np.stack([x, x]).astype(np.float32)


@pytest.mark.parametrize(
    "divisor,level_db,phase",
    [(4, -6.0, 0.0), (4, -6.0, 45.0), (6, -6.0, 60.0), (8, -6.0, 67.5), (4, 3.0, 45.0)],
    ids=["3341-15", "3341-16", "3341-17", "3341-18", "3341-19"],
)
def test_tech_3341_true_peak_cases(divisor: int, level_db: float, phase: float) -> None:
    sr = 48000
    measured = _true_peak(_tp_sine(sr, sr / divisor, level_db, phase), sr)
    assert level_db - TP_LOW <= measured <= level_db + TP_HIGH


@pytest.mark.parametrize("sr", [44100, 48000, 96000])
@pytest.mark.parametrize("freq", [997.0, 7000.0, 15000.0, 19000.0])
def test_sines_read_their_amplitude_at_every_rate(sr: int, freq: float) -> None:
    measured = _true_peak(_tp_sine(sr, freq, -3.0, 30.0), sr)
    assert -3.0 - TP_LOW <= measured <= -3.0 + TP_HIGH
    # An inter-sample peak: at fs/4 and 45 degrees every sample is 3 dB under the peak.
    assert oversampling_factor(sr) * sr >= 176_400


def test_oversampling_factors_and_phase_zero_is_the_input() -> None:
    assert [oversampling_factor(r) for r in (48000, 96000, 192000)] == [4, 2, 1]
    phases = interpolator(4)
    taps = phases.shape[1]
    expected = np.zeros(taps)
    expected[taps // 2] = 1.0
    np.testing.assert_allclose(phases[0], expected, atol=1e-12)


def test_block_size_invariant_and_silence() -> None:
    x = (0.3 * np.random.default_rng(3).standard_normal((2, 48000))).astype(np.float32)
    assert _true_peak(x, 48000, 100) == _true_peak(x, 48000, 48000)
    assert _true_peak(x, 48000) >= 20 * math.log10(float(np.abs(x).max()))
    assert _true_peak(np.zeros((2, 1000), np.float32), 48000) == -math.inf


@pytest.mark.parametrize("kind", ["music", "speech"])
def test_matches_ffmpeg_ebur128(kind: str, tmp_path: Path) -> None:
    sr = 48000
    x = music_like(sr, 20.0, 1) if kind == "music" else speech_like(sr, 20.0, 2)
    path = tmp_path / "x.wav"
    sf.write(path, x.T, sr, subtype="FLOAT")
    ref = ebur128.measure(path)
    meter = LoudnessMeter(sr, 2)
    meter.add(x)
    # ffmpeg prints to 0.1: its rounding (0.05) on top of the standard's tolerances.
    assert meter.integrated() == pytest.approx(ref.integrated, abs=0.15)
    assert meter.loudness_range() == pytest.approx(ref.lra, abs=0.6)
    assert meter.momentary_max() == pytest.approx(ref.momentary_max, abs=0.15)
    assert meter.short_term_max() == pytest.approx(ref.short_term_max, abs=0.15)
    assert _true_peak(x, sr) == pytest.approx(ref.true_peak, abs=0.2)


def _limit(x: np.ndarray, sr: int, gain_db: float, ceiling_db: float, block: int = 4096):  # type: ignore[no-untyped-def]
    lim = TruePeakLimiter(gain_db, ceiling_db)
    lim.configure(sr, x.shape[0])
    parts = [lim.process(x[:, s : s + block]) for s in range(0, x.shape[1], block)]
    return np.concatenate([*parts, lim.flush()], axis=1)


@pytest.mark.parametrize("sr", [44100, 48000])
def test_limiter_holds_the_true_peak_ceiling(sr: int) -> None:
    x = music_like(sr, 6.0, 5)
    y = _limit(x, sr, gain_db=12.0, ceiling_db=-1.0)
    assert y.shape == x.shape
    # Our meter and ffmpeg's agree within 0.2 dB (test above); the limiter itself holds -1.0
    # within a few hundredths (the effect aims 0.05 dB under).
    assert _true_peak(y, sr) <= -1.0 + 0.05
    assert float(np.abs(y).max()) <= 10 ** (-1 / 20)


def test_limiter_is_a_pure_gain_when_nothing_reaches_the_ceiling() -> None:
    x = music_like(48000, 3.0, 6)
    y = _limit(x, 48000, gain_db=-6.0, ceiling_db=-1.0, block=1000)
    np.testing.assert_allclose(y, x * 10 ** (-6 / 20), atol=1e-6)


def test_light_limiting_keeps_the_loudness() -> None:
    # Music 2 dB under the ceiling with three 5 ms hits about 3 dB over it: the loudness the
    # static gain set stays within 0.1 LU (the limiter touches only the hits).
    sr = 48000
    x = music_like(sr, 10.0, 7)
    x *= 10 ** ((-3.0 - _true_peak(x, sr)) / 20)
    hit = np.hanning(int(0.005 * sr))
    for start in (sr, 4 * sr, 7 * sr):
        x[:, start : start + hit.size] += hit.astype(np.float32)
    y = _limit(x, sr, gain_db=0.0, ceiling_db=-1.0)
    before, after = LoudnessMeter(sr, 2), LoudnessMeter(sr, 2)
    before.add(x)
    after.add(y)
    assert _true_peak(x, sr) > 1.0 and _true_peak(y, sr) <= -1.0 + 0.05
    assert after.integrated() == pytest.approx(before.integrated(), abs=0.1)


@pytest.mark.parametrize("sr", [44100, 48000, 96000])
def test_meter_matches_a_plain_numpy_oversampler(sr: int) -> None:
    # Reference: zero-stuff by the factor, convolve with the whole interpolation filter,
    # take the largest magnitude (no screening, no streaming).
    factor = oversampling_factor(sr)
    phases = interpolator(factor)
    h = phases.T.reshape(-1)  # back to the prototype filter: h[F k + p] = phases[p, k]
    x = music_like(sr, 0.5, 8)
    stuffed = np.zeros((2, x.shape[1] * factor))
    stuffed[:, ::factor] = x
    reference = max(float(np.abs(np.convolve(row, h)).max()) for row in stuffed)
    meter = TruePeakMeter(sr, 2)
    for s in range(0, x.shape[1], 1000):
        meter.add(x[:, s : s + 1000])
    np.testing.assert_allclose(meter.true_peak(), reference, rtol=1e-12)


def test_limiter_output_does_not_depend_on_the_block_size() -> None:
    x = music_like(48000, 2.0, 9)
    np.testing.assert_array_equal(
        _limit(x, 48000, 12.0, -1.0, block=333), _limit(x, 48000, 12.0, -1.0, block=48000)
    )
