"""`FileMeter` against the separate meters it replaces in files' analyses: fed the same blocks,
loudness and true peak must agree bit for bit (same kernels, same order), peak exactly, RMS
and DC offset within float rounding (sums in another order)."""

import math

import numpy as np
import pytest

from dsp.loudness import LevelMeter, LoudnessMeter
from dsp.meters import FileMeter
from dsp.truepeak import TruePeakMeter
from tests.loudness_signals import music_like


def _feed(meters: list[object], x: np.ndarray, block: int) -> None:
    for start in range(0, x.shape[1], block):
        for meter in meters:
            meter.add(x[:, start : start + block])  # type: ignore[attr-defined]


@pytest.mark.parametrize(("sr", "channels"), [(48_000, 2), (44_100, 1), (48_000, 6)])
def test_matches_the_separate_meters(sr: int, channels: int) -> None:
    stereo = music_like(sr, 7.3, seed=5)
    x = np.ascontiguousarray(np.concatenate([stereo, 0.5 * stereo, 0.25 * stereo])[:channels])
    x[:, 1000:] += np.float32(0.01)  # some DC
    fused, levels = FileMeter(sr, channels), LevelMeter()
    loudness, true_peak = LoudnessMeter(sr, channels), TruePeakMeter(sr, channels)
    _feed([fused, levels, loudness, true_peak], x, 65536)
    for name in ("integrated", "loudness_range", "momentary_max", "short_term_max"):
        assert getattr(fused, name)() == getattr(loudness, name)(), name
    assert fused.true_peak_db() == true_peak.true_peak_db()
    assert fused.peak_db() == levels.peak_db()
    assert fused.rms_db() == pytest.approx(levels.rms_db(), abs=1e-9)
    assert fused.dc_offset() == pytest.approx(levels.dc_offset(), rel=1e-9)
    assert fused.clipped_samples == levels.clipped_samples


def test_block_size_invariant_and_clipping_counted() -> None:
    x = music_like(48_000, 4.0, seed=2)
    x[0, 100:110] = 1.0
    x[1, 5] = -1.5
    a, b = FileMeter(48_000, 2), FileMeter(48_000, 2)
    _feed([a], x, 999)
    _feed([b], x, x.shape[1])
    for name in ("integrated", "loudness_range", "true_peak_db", "peak_db"):
        assert getattr(a, name)() == getattr(b, name)(), name
    assert a.clipped_samples == b.clipped_samples == 11
    assert a.peak_db() == pytest.approx(20 * math.log10(1.5))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_are_refused(bad: float) -> None:
    x = music_like(48_000, 1.0, seed=1)
    x[1, 4321] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        FileMeter(48_000, 2).add(x)


def test_silence_and_nothing() -> None:
    meter = FileMeter(48_000, 2)
    assert (meter.peak_db(), meter.rms_db(), meter.dc_offset()) == (-math.inf, -math.inf, 0.0)
    meter.add(np.zeros((2, 48_000), np.float32))
    assert meter.true_peak_db() == meter.peak_db() == meter.integrated() == -math.inf
    assert not meter.clipped
