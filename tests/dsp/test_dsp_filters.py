import numpy as np
import pytest
import scipy.signal as ss

from dsp.filters import EQ, EqBand, biquad_cascade, rbj_sos
from tests import rbj

SR = 48000


def _gain_db(sos: np.ndarray, freq: float) -> float:
    _, h = ss.sosfreqz(sos, worN=[freq], fs=SR)
    return float(20 * np.log10(np.abs(h[0])))


def _noise(channels: int, n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((channels, n))


def test_design_matches_cookbook_responses() -> None:
    assert _gain_db(rbj_sos([EqBand("peak", 1000, 2.0, 6.0)], SR), 1000) == pytest.approx(6.0)
    assert _gain_db(rbj_sos([EqBand("peak", 1000, 2.0, -9.0)], SR), 1000) == pytest.approx(-9.0)
    lp = rbj_sos([EqBand("lowpass", 2000, 1 / np.sqrt(2))], SR)
    assert _gain_db(lp, 2000) == pytest.approx(-3.0103, abs=1e-3)
    assert _gain_db(lp, 10) == pytest.approx(0.0, abs=1e-6)
    hp = rbj_sos([EqBand("highpass", 2000, 1 / np.sqrt(2))], SR)
    assert _gain_db(hp, 2000) == pytest.approx(-3.0103, abs=1e-3)
    bp = rbj_sos([EqBand("bandpass", 3000, 4.0)], SR)
    assert _gain_db(bp, 3000) == pytest.approx(0.0, abs=1e-9)
    notch = rbj_sos([EqBand("notch", 3000, 4.0)], SR)
    assert _gain_db(notch, 3000) < -100
    ls = rbj_sos([EqBand("lowshelf", 300, 0.7071, 6.0)], SR)
    assert _gain_db(ls, 1.0) == pytest.approx(6.0, abs=1e-3)
    assert _gain_db(ls, 300) == pytest.approx(3.0, abs=1e-2)
    assert _gain_db(ls, 20000) == pytest.approx(0.0, abs=1e-2)
    hs = rbj_sos([EqBand("highshelf", 3000, 0.7071, -6.0)], SR)
    assert _gain_db(hs, SR / 2 - 1) == pytest.approx(-6.0, abs=1e-2)
    assert _gain_db(hs, 10) == pytest.approx(0.0, abs=1e-3)


def test_sos_layout_normalised() -> None:
    sos = rbj_sos([EqBand("peak", 500, 1.0, 3.0), EqBand("lowpass", 9000)], SR)
    assert sos.shape == (2, 6)
    np.testing.assert_array_equal(sos[:, 3], 1.0)
    b, _a = ss.sos2tf(sos[:1])
    np.testing.assert_allclose(sos[0, :3], b)


@pytest.mark.parametrize(
    "band",
    [
        EqBand("peak", 0.0),
        EqBand("peak", 24000.0),
        EqBand("peak", -5.0),
        EqBand("lowpass", 1000.0, q=0.0),
        EqBand("wobble", 1000.0),
    ],
)
def test_validation(band: EqBand) -> None:
    with pytest.raises(ValueError):
        rbj_sos([band], SR)


@pytest.mark.parametrize("sections", [0, 1, 3, 4, 5, 9])
@pytest.mark.parametrize("channels", [1, 2, 3])
def test_cascade_matches_sosfilt_float64(sections: int, channels: int) -> None:
    kinds = ["peak", "lowshelf", "highshelf", "lowpass", "highpass", "bandpass", "notch"]
    bands = [EqBand(kinds[i % 7], 200.0 * (i + 1), 0.5 + 0.3 * i, 4.0 - i) for i in range(sections)]
    sos = rbj_sos(bands, SR)
    x = _noise(channels, 5000)
    y = biquad_cascade(x, sos, np.zeros((channels, sections, 2)))
    assert y.dtype == np.float64
    ref = ss.sosfilt(sos, x, axis=1) if sections else x
    np.testing.assert_allclose(y, ref, rtol=0, atol=1e-6)


def test_cascade_state_and_blocks_exact() -> None:
    sos = rbj_sos([EqBand("peak", 100, 1, 6), EqBand("highshelf", 5000, 0.7071, -3)] * 3, SR)
    x = _noise(2, 20000, 1).astype(np.float32)
    whole = biquad_cascade(x, sos, np.zeros((2, 6, 2)))
    state = np.zeros((2, 6, 2))
    parts = [
        biquad_cascade(np.ascontiguousarray(x[:, s : s + 777]), sos, state)
        for s in range(0, 20000, 777)
    ]
    assert whole.dtype == np.float32
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), whole)
    # the state after the blocks is the one scipy reports for the whole signal
    _, zf = ss.sosfilt(sos, x.astype(np.float64), axis=1, zi=np.zeros((6, 2, 2)))
    np.testing.assert_allclose(state, zf.transpose(1, 0, 2), atol=1e-9)


def test_eq_effect_float32_close_to_sosfilt() -> None:
    bands = [EqBand("peak", 1000, 1.0, 6.0), EqBand("lowshelf", 100, 0.7071, -4.0)]
    eq = EQ(bands)
    assert eq.configure(SR, 2) == (SR, 2)
    x = (0.3 * _noise(2, 10000, 2)).astype(np.float32)
    y = eq.process(x)
    assert y.dtype == np.float32 and y.shape == x.shape
    ref = ss.sosfilt(rbj_sos(bands, SR), x.astype(np.float64), axis=1)
    np.testing.assert_allclose(y, ref, atol=1e-6)
    assert eq.flush().shape == (2, 0)


def _audit_bands(count: int) -> list[EqBand]:
    kinds = ["peak", "lowshelf", "highshelf", "lowpass", "highpass", "bandpass", "notch"]
    return [
        EqBand(kinds[i % 7], 150.0 * (i + 1), 0.6 + 0.2 * i, 6.0 - 1.5 * i) for i in range(count)
    ]


def _independent_sos(bands: list[EqBand], sample_rate: int) -> np.ndarray:
    """The same cascade designed by tests/rbj.py, so the reference owns nothing of ours."""
    return np.array([rbj.rbj_sos(b.kind, b.frequency, b.q, b.gain_db, sample_rate) for b in bands])


@pytest.mark.parametrize("sections", range(9, 17))
@pytest.mark.parametrize(
    ("channels", "frames", "block"),
    [(1, 65537, 65536), (1, 65538, 65536), (3, 5000, 777), (1, 2, 65536), (3, 2, 1), (5, 7, 2)],
)
def test_long_cascades_on_short_blocks_match_sosfilt(
    sections: int, channels: int, frames: int, block: int
) -> None:
    """Defect 1 of issue 13: with 9+ bands the middle section groups run in place, and a block
    of 1 or 2 frames on a lone channel (mono, odd channel counts) read a sample the other lane
    had already overwritten (errors up to 0.4 on noise of 0.25 RMS). The tolerance is float32
    output rounding plus the float64 cascade's own error."""
    bands = _audit_bands(sections)
    x = (0.25 * _noise(channels, frames, sections)).astype(np.float32)
    eq = EQ(bands)
    eq.configure(SR, channels)
    y = np.concatenate(
        [eq.process(np.ascontiguousarray(x[:, s : s + block])) for s in range(0, frames, block)],
        axis=1,
    )
    ref = ss.sosfilt(_independent_sos(bands, SR), x.astype(np.float64), axis=1)
    np.testing.assert_allclose(y, ref, rtol=0, atol=2e-5 * max(1.0, float(np.max(np.abs(ref)))))


@pytest.mark.parametrize("frames", [1, 2, 3])
def test_in_place_cascade_short_blocks_are_exact(frames: int) -> None:
    """Float64 in and out: 1- to 3-frame blocks give the same bits as one whole-signal call."""
    sos = rbj_sos(_audit_bands(12), SR)
    x = _noise(3, 40, 4)
    whole = biquad_cascade(x, sos, np.zeros((3, 12, 2)))
    state = np.zeros((3, 12, 2))
    parts = [
        biquad_cascade(np.ascontiguousarray(x[:, s : s + frames]), sos, state)
        for s in range(0, 40, frames)
    ]
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), whole)
    np.testing.assert_allclose(whole, ss.sosfilt(sos, x, axis=1), rtol=0, atol=1e-9)
