import numpy as np
import pytest

from dsp.chain import Chain
from dsp.delay import MAX_TAIL_S, TAIL_FADE_S, Delay

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


FLOOR = 10 ** (-90 / 20)


def _tail_of(fx: Delay, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    fx.configure(SR, x.shape[0])
    return fx.process(x), fx.flush()


@pytest.mark.parametrize(("feedback", "mix"), [(0.5, 1.0), (0.8, 0.3), (0.0, 1.0)])
def test_tail_runs_until_echoes_fall_below_minus_90_dbfs(feedback: float, mix: float) -> None:
    """Issue 13, defect 7: the tail is exactly the recurrence's continuation, and it stops with
    the first period whose echoes all stay under -90 dBFS."""
    x = np.zeros((1, 100), np.float32)
    x[0, 90] = 0.9  # its first echo falls in the tail
    head, tail = _tail_of(Delay(time_ms=10.0, feedback=feedback, mix=mix), x)
    y = np.concatenate([head, tail], axis=1)
    assert tail.shape[1] % 80 == 0 and tail.shape[1] > 0
    long = np.zeros((1, y.shape[1] + 4000))
    long[0, 90] = 0.9
    ref = _reference(long, 80, feedback, mix, False)
    np.testing.assert_allclose(y[0], ref[0, : y.shape[1]], atol=1e-7)
    assert np.max(np.abs(ref[0, y.shape[1] :])) < FLOOR  # what was left out is below -90 dBFS
    assert np.max(np.abs(y[0, -80:])) >= FLOOR  # and the last period kept was not


def test_tail_is_capped_at_60_s_and_faded_out() -> None:
    """Feedback 0.99 with 1 s echoes is still at about -5 dBFS after a minute: the tail stops
    at MAX_TAIL_S with a linear fade over the last second instead of a click."""
    x = np.zeros((1, 8000), np.float32)
    x[0, :8000] = 0.5 * np.sin(np.arange(8000) * 0.05)
    head, tail = _tail_of(Delay(time_ms=1000.0, feedback=0.99, mix=1.0), x)
    assert tail.shape[1] == round(MAX_TAIL_S * SR)
    fade = round(TAIL_FADE_S * SR)
    total = head.shape[1] + tail.shape[1]
    ref = _reference(np.pad(x.astype(np.float64), ((0, 0), (0, tail.shape[1]))), SR, 0.99, 1, False)
    assert ref.shape[1] == total
    gains = np.ones(total)
    gains[-fade:] = (fade - 1 - np.arange(fade)) / fade
    y = np.concatenate([head, tail], axis=1)
    np.testing.assert_allclose(y[0], ref[0] * gains, atol=1e-6)
    assert y[0, -1] == 0.0
    assert np.max(np.abs(y[0, -2 * fade : -fade])) > 0.2  # 0.5 * 0.99^59: loud until the fade
    # within the fade every sample is under its share of the ramp: it ends at 0, no cut
    assert np.all(np.abs(y[0, -fade:]) <= 0.5 * (fade - np.arange(fade)) / fade + 1e-6)


def test_silent_line_or_dry_mix_gives_no_tail() -> None:
    x = np.ones((2, 50), np.float32)
    assert _tail_of(Delay(time_ms=10.0, feedback=0.9, mix=0.0), x)[1].shape == (2, 0)
    assert _tail_of(Delay(time_ms=10.0, feedback=0.9, mix=1.0), 0 * x)[1].shape == (2, 0)


def test_chain_drains_a_long_tail_in_blocks() -> None:
    """A minute of tail is handed on in pieces no larger than the blocks read (or 4096 frames
    for smaller blocks), and the result does not depend on the block size."""
    x = (0.3 * np.random.default_rng(1).standard_normal((2, 4000))).astype(np.float32)
    pieces: list[int] = []

    def run(block: int) -> np.ndarray:
        out: list[np.ndarray] = []

        def source():  # type: ignore[no-untyped-def]
            for s in range(0, x.shape[1], block):
                yield x[:, s : s + block]

        def sink(b: np.ndarray) -> None:
            pieces.append(b.shape[1])
            out.append(b)

        Chain([Delay(time_ms=700.0, feedback=0.99, mix=0.5)]).run(source, sink, SR, 2, 4000)
        return np.concatenate(out, axis=1)

    a = run(5000)
    assert max(pieces) <= 5000
    assert a.shape[1] == 4000 + round(MAX_TAIL_S * SR)
    np.testing.assert_array_equal(a, run(7))
    assert max(pieces) <= 5000


def test_validation() -> None:
    for kwargs in (
        {"time_ms": 0.0, "feedback": 0.1, "mix": 0.5},
        {"time_ms": 10.0, "feedback": 1.0, "mix": 0.5},
        {"time_ms": 10.0, "feedback": 0.1, "mix": 1.5},
    ):
        with pytest.raises(ValueError):
            Delay(**kwargs)  # type: ignore[arg-type]
