import numpy as np
import pytest
import scipy.signal as ss

from dsp.chain import Chain
from dsp.channels import Channels
from dsp.resample import Resample


@pytest.mark.parametrize("src,dst", [(48000, 44100), (44100, 48000), (48000, 16000)])
def test_resample_length_and_passband(src: int, dst: int) -> None:
    n = src * 2
    t = np.arange(n) / src
    x = np.stack([np.sin(2 * np.pi * 440 * t), 0.5 * np.sin(2 * np.pi * 1000 * t)]).astype(
        np.float32
    )
    y, sr = Chain([Resample(rate=dst)]).process_array(x, src, block_frames=5000)
    assert sr == dst
    assert abs(y.shape[1] - round(n * dst / src)) <= 2
    g = np.gcd(src, dst)
    ref = ss.resample_poly(x.astype(np.float64), dst // g, src // g, axis=1)
    m = min(y.shape[1], ref.shape[1])
    core = slice(dst // 10, m - dst // 10)  # away from the edges
    np.testing.assert_allclose(y[:, core], ref[:, core], atol=2e-3)


def test_resample_same_rate_passes() -> None:
    x = np.random.default_rng(0).standard_normal((1, 1000)).astype(np.float32)
    y, sr = Chain([Resample(rate=8000)]).process_array(x, 8000)
    assert sr == 8000
    np.testing.assert_array_equal(y, x)


def test_channels_modes() -> None:
    x = np.random.default_rng(1).standard_normal((2, 100)).astype(np.float32)
    y, _ = Chain([Channels("mono")]).process_array(x, 8000)
    np.testing.assert_allclose(y[0], (x[0].astype(np.float64) + x[1]) / 2, rtol=1e-6)
    assert Chain([Channels("mono")]).configure(8000, 2) == (8000, 1)
    y, _ = Chain([Channels("swap")]).process_array(x, 8000)
    np.testing.assert_array_equal(y, x[::-1])
    y, _ = Chain([Channels("stereo")]).process_array(x[:1], 8000)
    np.testing.assert_array_equal(y, np.repeat(x[:1], 2, axis=0))
    six = np.random.default_rng(2).standard_normal((6, 50)).astype(np.float32)
    y, _ = Chain([Channels("stereo")]).process_array(six, 8000)
    np.testing.assert_array_equal(y, six[:2])
    y, _ = Chain([Channels("swap")]).process_array(x[:1], 8000)
    np.testing.assert_array_equal(y, x[:1])
    with pytest.raises(ValueError):
        Channels("quad")
