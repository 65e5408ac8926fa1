import math

import numpy as np
import pytest

from dsp.chain import Chain
from dsp.dynamics import Compressor, Limiter

SR = 8000


def _compressor_reference(x, threshold, ratio, knee, attack_ms, release_ms, makeup):  # type: ignore[no-untyped-def]
    """Giannoulis et al. 2012, written out sample by sample."""
    aa = math.exp(-1 / (attack_ms * 1e-3 * SR))
    ar = math.exp(-1 / (release_ms * 1e-3 * SR))
    yl = 0.0
    out = np.zeros_like(x, dtype=np.float64)
    for i in range(x.shape[1]):
        level = max(abs(float(v)) for v in x[:, i])
        xg = 20 * math.log10(max(level, 1e-30))
        if 2 * (xg - threshold) < -knee:
            yg = xg
        elif knee > 0 and 2 * abs(xg - threshold) <= knee:
            yg = xg + (1 / ratio - 1) * (xg - threshold + knee / 2) ** 2 / (2 * knee)
        else:
            yg = threshold + (xg - threshold) / ratio
        xl = xg - yg
        yl = aa * yl + (1 - aa) * xl if xl > yl else ar * yl + (1 - ar) * xl
        out[:, i] = x[:, i] * 10 ** ((makeup - yl) / 20)
    return out


@pytest.mark.parametrize("knee", [0.0, 6.0])
def test_compressor_matches_loop(knee: float) -> None:
    rng = np.random.default_rng(0)
    env = np.repeat([0.05, 0.9, 0.2, 0.6], 500)
    x = (rng.standard_normal((2, 2000)) * env).astype(np.float32)
    fx = Compressor(
        threshold_db=-18.0, ratio=4.0, attack_ms=2.0, release_ms=30.0, makeup_db=3.0, knee_db=knee
    )
    fx.configure(SR, 2)
    y = np.concatenate([fx.process(x[:, s : s + 300]) for s in range(0, 2000, 300)], axis=1)
    ref = _compressor_reference(x, -18.0, 4.0, knee, 2.0, 30.0, 3.0)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-7)


def test_compressor_static_curve() -> None:
    # a steady tone long after attack settles: 12 dB over threshold at 4:1 -> 9 dB reduction
    t = np.arange(SR) / SR
    x = (10 ** (-6 / 20) * np.sign(np.sin(2 * np.pi * 50 * t))).astype(np.float32)[None]
    fx = Compressor(threshold_db=-18.0, ratio=4.0, attack_ms=1.0, release_ms=1.0)
    fx.configure(SR, 1)
    y = fx.process(x)
    assert 20 * np.log10(np.max(np.abs(y[:, -100:]))) == pytest.approx(-15.0, abs=0.01)


def test_limiter_ceiling_on_transients() -> None:
    rng = np.random.default_rng(1)
    x = (0.3 * rng.standard_normal((2, 20000))).astype(np.float32)
    x[:, 5000] = 4.0
    x[1, 9000:9010] = -8.0
    x[:, 15000:15400] *= 10.0
    for ceiling in (-1.0, -0.1, -6.0):
        fx = Limiter(ceiling_db=ceiling, release_ms=50.0, lookahead_ms=5.0)
        y, _ = Chain([fx]).process_array(x, SR, block_frames=1000)
        assert y.shape == x.shape
        assert np.max(np.abs(y)) <= 10 ** (ceiling / 20) + 1e-7
        assert np.max(np.abs(y)) > 10 ** (ceiling / 20) * 0.9


def test_limiter_aligned_and_transparent_below_ceiling() -> None:
    x = (0.2 * np.random.default_rng(2).standard_normal((2, 5000))).astype(np.float32)
    y, _ = Chain([Limiter(ceiling_db=-0.5, release_ms=20.0, lookahead_ms=3.0)]).process_array(
        x, SR, block_frames=333
    )
    np.testing.assert_array_equal(y, x)


def test_limiter_short_stream_keeps_length() -> None:
    x = np.full((1, 10), 2.0, np.float32)
    y, _ = Chain([Limiter(ceiling_db=0.0, release_ms=10.0, lookahead_ms=5.0)]).process_array(x, SR)
    assert y.shape == (1, 10)
    assert np.max(np.abs(y)) <= 1.0


@pytest.mark.parametrize("bits", [16, 24])
def test_limiter_on_a_sample_grid_stays_under_after_rounding(bits: int) -> None:
    """Rounded to the nearest 2^-(bits-1) (what libsndfile does for PCM), still <= ceiling."""
    step = 2.0 ** (1 - bits)
    x = (2.0 * np.random.default_rng(3).standard_normal((2, 8000))).astype(np.float32)
    for ceiling_db in (-0.1, -0.3, -1.0, -9.9):
        fx = Limiter(ceiling_db=ceiling_db, release_ms=30.0, sample_step=step)
        ceiling = 10 ** (ceiling_db / 20)
        assert ceiling - step < fx.ceiling <= ceiling
        assert fx.ceiling / step == round(fx.ceiling / step)
        y, _ = Chain([fx]).process_array(x, SR, block_frames=1000)
        rounded = np.rint(y.astype(np.float64) / step) * step
        assert np.max(np.abs(rounded)) <= ceiling
