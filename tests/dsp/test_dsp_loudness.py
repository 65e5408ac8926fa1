import itertools
import math

import numpy as np
import pyloudnorm
import pytest
from scipy.signal import sosfilt

from dsp.loudness import (
    LevelMeter,
    LoudnessMeter,
    channel_weights,
    k_weighting_sos,
    peak_db,
    rms_db,
)


def _sine(sr: int, amp: float, seconds: float, freq: float = 997.0) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)[None, :]


def _measure(x: np.ndarray, sr: int, block: int = 4096) -> float:
    meter = LoudnessMeter(sr, x.shape[0])
    for s in range(0, x.shape[1], block):
        meter.add(x[:, s : s + block])
    return meter.integrated()


@pytest.mark.parametrize("sr", [44100, 48000])
def test_reference_sines(sr: int) -> None:
    assert _measure(_sine(sr, 1.0, 5.0), sr) == pytest.approx(-3.01, abs=0.01)
    assert _measure(_sine(sr, 0.1, 5.0), sr) == pytest.approx(-23.01, abs=0.01)


def _music_like(sr: int, seconds: float, channels: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(sr * seconds)
    t = np.arange(n) / sr
    env = 0.2 + 0.8 * (0.5 + 0.5 * np.sin(2 * np.pi * 0.3 * t)) ** 3
    tones = sum(np.sin(2 * np.pi * f * t + k) / (k + 1) for k, f in enumerate([110, 220, 330, 880]))
    x = np.stack([env * (0.3 * tones + 0.1 * rng.standard_normal(n)) for _ in range(channels)])
    x[:, : n // 5] *= 0.003  # a very quiet intro exercises both gates
    return (0.5 * x).astype(np.float32)


@pytest.mark.parametrize("sr,channels,seed", [(48000, 2, 0), (44100, 1, 1), (48000, 5, 2)])
def test_matches_pyloudnorm(sr: int, channels: int, seed: int) -> None:
    x = _music_like(sr, 12.0, channels, seed)
    ours = _measure(x, sr, block=3000)
    ref = pyloudnorm.Meter(sr).integrated_loudness(x.T.astype(np.float64))
    assert ours == pytest.approx(ref, abs=0.1)


def test_noise_matches_pyloudnorm() -> None:
    x = (0.05 * np.random.default_rng(7).standard_normal((2, 48000 * 8))).astype(np.float32)
    ref = pyloudnorm.Meter(48000).integrated_loudness(x.T.astype(np.float64))
    assert _measure(x, 48000) == pytest.approx(ref, abs=0.1)


def test_block_size_invariant_and_silence() -> None:
    x = _music_like(48000, 3.0, 2, 3)
    assert _measure(x, 48000, 1024) == _measure(x, 48000, 48000 * 3)
    assert _measure(np.zeros((2, 48000), np.float32), 48000) == -math.inf
    assert _measure(x[:, :1000], 48000) == -math.inf  # shorter than one 400 ms block


def test_channel_weights() -> None:
    np.testing.assert_array_equal(channel_weights(2), [1, 1])
    np.testing.assert_array_equal(channel_weights(6), [1, 1, 1, 0, 1.41, 1.41])


def test_peak_rms_level_meter() -> None:
    x = _sine(48000, 0.5, 1.0, 1000.0)
    assert peak_db(x) == pytest.approx(20 * math.log10(0.5), abs=1e-3)
    assert rms_db(x) == pytest.approx(20 * math.log10(0.5 / math.sqrt(2)), abs=1e-3)
    assert peak_db(np.zeros((1, 10), np.float32)) == -math.inf
    meter = LevelMeter()
    meter.add(x[:, :20000])
    meter.add(x[:, 20000:])
    assert meter.peak_db() == pytest.approx(peak_db(x))
    assert meter.rms_db() == pytest.approx(rms_db(x))
    assert not meter.clipped
    meter.add(np.array([[1.0, -1.2]], np.float32))
    assert meter.clipped and meter.clipped_samples == 2


def test_dc_offset_is_the_largest_channel_mean() -> None:
    rng = np.random.default_rng(3)
    x = (0.1 * rng.standard_normal((3, 30_001))).astype(np.float32)
    x[1] += 0.05
    x[2] -= 0.2
    meter = LevelMeter()
    for start in range(0, x.shape[1], 4096):  # any block size: sums, not block means
        meter.add(x[:, start : start + 4096])
    reference = float(np.abs(x.astype(np.float64).mean(axis=1)).max())
    assert meter.dc_offset() == pytest.approx(reference, rel=1e-9)
    assert meter.dc_offset() == pytest.approx(0.2, abs=0.005)
    assert LevelMeter().dc_offset() == 0.0


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_levels_of_non_finite_samples_are_refused_not_read_as_silence(bad: float) -> None:
    """NaN compares false, so a running max used to skip it: an all-NaN stream read as digital
    silence. Every level function now refuses such a signal instead of inventing a level."""
    all_bad = np.full((2, 48_000), bad, dtype=np.float32)
    one_bad = _sine(48_000, 0.5, 1.0).repeat(2, axis=0)
    one_bad[1, 1234] = bad
    for x in (all_bad, one_bad):
        with pytest.raises(ValueError, match="NaN or infinite"):
            peak_db(x)
        with pytest.raises(ValueError, match="NaN or infinite"):
            rms_db(x)
        with pytest.raises(ValueError, match="NaN or infinite"):
            LevelMeter().add(x)
        with pytest.raises(ValueError, match="NaN or infinite"):
            LoudnessMeter(48_000, 2).add(x)


def test_huge_finite_levels_are_reported_as_they_are() -> None:
    # Absurd magnitudes never reach a meter (jobs.probe refuses them at the boundary); a
    # meter itself reports the true level rather than guessing.
    meter = LevelMeter()
    meter.add(np.full((1, 10), 1000.0, dtype=np.float32))
    assert meter.peak_db() == pytest.approx(60.0)
    assert meter.clipped


# --- EBU Tech 3341 / 3342 minimum requirements, synthesized from their descriptions ---------


def _stereo_tone(sr: int, parts: list[tuple[float, float]], freq: float = 1000.0) -> np.ndarray:
    """Concatenated stereo 1 kHz sine segments of (dBFS peak level, seconds), phase-continuous."""
    amps = np.concatenate([np.full(round(sr * s), 10 ** (db / 20)) for db, s in parts])
    t = np.arange(amps.size) / sr
    x = (amps * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.stack([x, x])


def _meter(x: np.ndarray, sr: int, block: int = 4410) -> LoudnessMeter:
    meter = LoudnessMeter(sr, x.shape[0])
    for s in range(0, x.shape[1], block):
        meter.add(x[:, s : s + block])
    return meter


@pytest.mark.parametrize(
    "parts",
    [
        [(-23.0, 20.0)],  # case 1
        [(-33.0, 20.0)],  # case 2 (expects -33)
        [(-36.0, 10.0), (-23.0, 60.0), (-36.0, 10.0)],  # case 3
        [(-72.0, 10.0), (-36.0, 10.0), (-23.0, 60.0), (-36.0, 10.0), (-72.0, 10.0)],  # case 4
        [(-26.0, 20.0), (-20.0, 20.1), (-26.0, 20.0)],  # case 5
    ],
    ids=["3341-1", "3341-2", "3341-3", "3341-4", "3341-5"],
)
@pytest.mark.parametrize("sr", [48000, 44100])
def test_tech_3341_integrated(parts: list[tuple[float, float]], sr: int) -> None:
    expected = -33.0 if parts == [(-33.0, 20.0)] else -23.0
    # Tech 3341's tolerance for the integrated loudness: +-0.1 LU.
    assert _meter(_stereo_tone(sr, parts), sr).integrated() == pytest.approx(expected, abs=0.1)


def test_tech_3341_case_6_five_channels() -> None:
    sr = 48000
    t = np.arange(sr * 20) / sr
    tone = np.sin(2 * np.pi * 1000 * t)
    levels = [-28.0, -28.0, -24.0, -30.0, -30.0]  # L R C Ls Rs, as in Tech 3341 case 6
    x = np.stack([10 ** (db / 20) * tone for db in levels]).astype(np.float32)
    assert _meter(x, sr).integrated() == pytest.approx(-23.0, abs=0.1)


def test_tech_3341_short_term_and_momentary_maxima() -> None:
    sr = 48000
    # Case 9's idea: 1.34 s at -20 dBFS + 1.66 s at -30 dBFS repeated: every 3 s window -23.0.
    x = _stereo_tone(sr, [(-20.0, 1.34), (-30.0, 1.66)] * 5)
    meter = _meter(x, sr)
    assert meter.short_term_max() == pytest.approx(-23.0, abs=0.1)
    # A steady tone's momentary and short-term loudness is its level; a 400 ms burst 10 dB up
    # reads 10 dB up on the momentary meter only partly on the short-term one.
    steady = _meter(_stereo_tone(sr, [(-23.0, 5.0)]), sr)
    assert steady.momentary_max() == pytest.approx(-23.0, abs=0.1)
    assert steady.short_term_max() == pytest.approx(-23.0, abs=0.1)
    burst = _meter(_stereo_tone(sr, [(-23.0, 4.0), (-13.0, 0.4), (-23.0, 4.0)]), sr)
    assert burst.momentary_max() == pytest.approx(-13.0, abs=0.1)
    assert burst.short_term_max() == pytest.approx(
        -23.0 + 10 * math.log10(1 + 9 * 0.4 / 3), abs=0.1
    )


@pytest.mark.parametrize(
    "parts,expected",
    [
        ([(-20.0, 20.0), (-30.0, 20.0)], 10.0),  # Tech 3342 case 1
        ([(-20.0, 20.0), (-15.0, 20.0)], 5.0),  # case 2
        ([(-40.0, 20.0), (-20.0, 20.0)], 20.0),  # case 3
        ([(-50.0, 20.0), (-35.0, 20.0), (-20.0, 20.0), (-35.0, 20.0), (-50.0, 20.0)], 15.0),
    ],
    ids=["3342-1", "3342-2", "3342-3", "3342-4"],
)
def test_tech_3342_loudness_range(parts: list[tuple[float, float]], expected: float) -> None:
    # Tech 3342's tolerance: +-1 LU.
    assert _meter(_stereo_tone(48000, parts), 48000).loudness_range() == pytest.approx(
        expected, abs=1.0
    )


def test_every_measure_is_block_size_invariant() -> None:
    x = _music_like(48000, 8.0, 2, 4)
    a, b = _meter(x, 48000, 1000), _meter(x, 48000, 48000 * 8)
    for name in ("integrated", "momentary_max", "short_term_max", "loudness_range"):
        assert getattr(a, name)() == getattr(b, name)(), name


def test_short_and_silent_streams_have_no_values() -> None:
    silent = _meter(np.zeros((2, 48000 * 4), np.float32), 48000)
    assert silent.momentary_max() == -math.inf and math.isnan(silent.loudness_range())
    short = _meter(_stereo_tone(48000, [(-20.0, 2.0)]), 48000)
    assert short.momentary_max() == pytest.approx(-20.0, abs=0.1)
    assert short.short_term_max() == -math.inf  # no full 3 s window


def test_step_energies_match_a_scipy_reference() -> None:
    # Plain reference: scipy's sosfilt with the same K-weighting sections, squared, weighted
    # and summed per 100 ms step.
    sr = 44100
    x = _music_like(sr, 2.05, 2, 9)
    meter = _meter(x, sr, block=777)
    energies, lengths = meter._steps()
    weighted = sosfilt(k_weighting_sos(sr), x.astype(np.float64), axis=1)
    per_frame = (channel_weights(2)[:, None] * weighted**2).sum(axis=0)
    edges = [k * sr // 10 for k in range(21)]
    expected = [per_frame[a:b].sum() for a, b in itertools.pairwise(edges)]
    np.testing.assert_array_equal(lengths, np.diff(edges))
    np.testing.assert_allclose(energies, expected, rtol=1e-9)
