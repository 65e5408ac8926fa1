import numpy as np
import pytest

from dsp.chain import Chain
from dsp.edits import Fade, Trim, fade_curve

SR = 1000


def test_fade_gains() -> None:
    x = np.ones((2, 1000), np.float32)
    y, _ = Chain([Fade(in_ms=100.0, out_ms=200.0)]).process_array(x, SR, block_frames=64)
    assert y.shape == x.shape
    np.testing.assert_allclose(y[0, :100], np.arange(100) / 100, rtol=1e-6)
    np.testing.assert_array_equal(y[:, 100:800], 1.0)
    np.testing.assert_allclose(y[1, 800:], (199 - np.arange(200)) / 200, rtol=1e-6)
    assert y[0, -1] == 0.0 and y[0, 0] == 0.0


@pytest.mark.parametrize("curve", ["linear", "sine", "exponential"])
def test_curves_monotonic_endpoints(curve: str) -> None:
    t = np.linspace(0, 1, 101)
    g = fade_curve(t, curve)
    assert g[0] == pytest.approx(0.0) and g[-1] == pytest.approx(1.0)
    assert np.all(np.diff(g) > 0)
    if curve == "sine":
        np.testing.assert_allclose(g**2 + fade_curve(1 - t, curve) ** 2, 1.0, atol=1e-12)


def test_fade_shorter_stream() -> None:
    x = np.ones((1, 50), np.float32)
    y, _ = Chain([Fade(in_ms=0.0, out_ms=100.0)]).process_array(x, SR, block_frames=7)
    np.testing.assert_allclose(y[0], (49 - np.arange(50)) / 100, rtol=1e-6)


def test_trim() -> None:
    x = np.arange(3000, dtype=np.float32)[None].repeat(2, axis=0)
    y, _ = Chain([Trim(start_s=0.5, end_s=2.25)]).process_array(x, SR, block_frames=333)
    np.testing.assert_array_equal(y, x[:, 500:2250])
    y, _ = Chain([Trim(start_s=1.0)]).process_array(x, SR, block_frames=100)
    np.testing.assert_array_equal(y, x[:, 1000:])
    y, _ = Chain([Trim(start_s=5.0)]).process_array(x, SR)
    assert y.shape == (2, 0)
    with pytest.raises(ValueError):
        Trim(start_s=2.0, end_s=1.0)
