import numpy as np
import pytest

from dsp.delay import Delay

SR = 8000


def _reference(x: np.ndarray, d: int, fb: float, mix: float, ping_pong: bool) -> np.ndarray:
    """Plain loops: d[n] = x[n-D] + fb * d'[n-D]; y = (1-mix) x + mix d."""
    ch, n = x.shape
    dl = np.zeros((ch, n))
    for i in range(n):
        for c in range(ch):
            if i >= d:
                src = (c + 1) % ch if ping_pong else c
                dl[c, i] = x[c, i - d] + fb * dl[src, i - d]
    return (1 - mix) * x + mix * dl


@pytest.mark.parametrize("ping_pong", [False, True])
@pytest.mark.parametrize("channels", [1, 2])
def test_matches_loop_reference(ping_pong: bool, channels: int) -> None:
    x = np.random.default_rng(0).standard_normal((channels, 3000)).astype(np.float32)
    fx = Delay(time_ms=12.5, feedback=0.6, mix=0.4, ping_pong=ping_pong)
    fx.configure(SR, channels)
    y = np.concatenate([fx.process(x[:, s : s + 256]) for s in range(0, 3000, 256)], axis=1)
    ref = _reference(x.astype(np.float64), 100, 0.6, 0.4, ping_pong)
    np.testing.assert_allclose(y, ref, atol=1e-5)


def test_ping_pong_alternates() -> None:
    x = np.zeros((2, 400), np.float32)
    x[0, 0] = 1.0
    fx = Delay(time_ms=10.0, feedback=0.5, mix=1.0, ping_pong=True)
    fx.configure(SR, 2)
    y = fx.process(x)
    assert y[0, 80] == 1.0 and y[1, 80] == 0.0
    assert y[1, 160] == 0.5 and y[0, 160] == 0.0
    assert y[0, 240] == 0.25 and y[1, 240] == 0.0


def test_tail_decays_below_floor_and_is_bounded() -> None:
    x = np.zeros((1, 100), np.float32)
    x[0, 0] = 1.0
    fx = Delay(time_ms=10.0, feedback=0.5, mix=1.0)
    fx.configure(SR, 1)
    head = fx.process(x)
    tail = fx.flush()
    y = np.concatenate([head, tail], axis=1)
    # echoes at k*80 with gain 0.5^(k-1); tail stops once below -120 dB (k about 21)
    assert tail.shape[1] % 80 == 0
    assert np.max(np.abs(y[0, -80:])) < 1e-6
    assert np.max(np.abs(y[0, -160:-80])) >= 1e-6 * 0.5
    np.testing.assert_allclose(y[0, 80 * 5], 0.5**4)
    long = Delay(time_ms=1000.0, feedback=0.99, mix=1.0)
    long.configure(SR, 1)
    long.process(x)
    assert long.flush().shape[1] <= 10 * SR + 8000


def test_validation() -> None:
    for kwargs in (
        {"time_ms": 0.0, "feedback": 0.1, "mix": 0.5},
        {"time_ms": 10.0, "feedback": 1.0, "mix": 0.5},
        {"time_ms": 10.0, "feedback": 0.1, "mix": 1.5},
    ):
        with pytest.raises(ValueError):
            Delay(**kwargs)  # type: ignore[arg-type]
