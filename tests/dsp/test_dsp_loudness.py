import math

import numpy as np
import pyloudnorm
import pytest

from dsp.loudness import LevelMeter, LoudnessMeter, channel_weights, peak_db, rms_db


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
