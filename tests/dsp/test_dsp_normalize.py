"""The `loudness` effect's kernel: static gain to the target, true-peak limiter, pass-through."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dsp.chain import Chain
from dsp.loudness import LoudnessMeter
from dsp.normalize import LoudnessNormalize
from dsp.truepeak import TruePeakMeter
from tests.loudness_signals import music_like, speech_like


def _run(
    x: np.ndarray, sr: int, target: float, ceiling: float
) -> tuple[np.ndarray, LoudnessNormalize]:
    effect = LoudnessNormalize(target, ceiling)
    y, out_sr = Chain([effect]).process_array(x, sr, block_frames=7000)
    assert out_sr == sr and y.shape == x.shape
    return y, effect


def _levels(y: np.ndarray, sr: int) -> tuple[float, float]:
    loud, peak = LoudnessMeter(sr, y.shape[0]), TruePeakMeter(sr, y.shape[0])
    loud.add(y)
    peak.add(y)
    return loud.integrated(), peak.true_peak_db()


@pytest.mark.parametrize(
    "kind,sr,target,ceiling",
    [("music", 48000, -23.0, -1.0), ("speech", 44100, -20.0, -1.0), ("music", 48000, -24.0, -2.0)],
)
def test_reaches_the_target_under_the_ceiling(
    kind: str, sr: int, target: float, ceiling: float
) -> None:
    x = music_like(sr, 10.0, 11) if kind == "music" else speech_like(sr, 10.0, 12)
    y, effect = _run(x, sr, target, ceiling)
    lufs, tp = _levels(y, sr)
    assert effect.reason == ""
    assert tp <= ceiling
    # These signals need little limiting at these targets: the static gain decides (0.1 LU).
    assert lufs == pytest.approx(target, abs=0.1)


def test_heavy_limiting_still_holds_the_ceiling_and_trims_shift_it() -> None:
    sr = 48000
    x = music_like(sr, 6.0, 13)
    y, _ = _run(x, sr, -8.0, -1.0)
    assert _levels(y, sr)[1] <= -1.0
    effect = LoudnessNormalize(-8.0, -1.0)
    effect.ceiling_trim_db = -1.5
    effect.gain_trim_db = 0.5
    z, _ = Chain([effect]).process_array(x, sr)
    assert _levels(z, sr)[1] <= -2.5
    assert effect.gain_db == pytest.approx(-8.0 - effect.measured_lufs + 0.5)


@pytest.mark.parametrize(
    "x",
    [np.zeros((2, 48000 * 2), np.float32), 0.5 * np.ones((2, 48000 // 4), np.float32)],
    ids=["silence", "shorter-than-400-ms"],
)
def test_no_loudness_passes_unchanged_with_a_reason(x: np.ndarray) -> None:
    y, effect = _run(x, 48000, -16.0, -1.0)
    np.testing.assert_array_equal(y, x)
    assert effect.measured_lufs == -math.inf and effect.gain_db == 0.0
    assert "400 ms" in effect.reason
