import itertools
from collections.abc import Callable, Iterator

import numpy as np
import pyloudnorm
import pytest

from dsp import (
    EQ,
    Chain,
    Channels,
    Compressor,
    Delay,
    Effect,
    EqBand,
    Fade,
    Gain,
    Limiter,
    LoudnessMeter,
    Normalize,
    PartitionedIR,
    Resample,
    Reverb,
    Stopped,
    Trim,
    peak_db,
    preset,
    warmup,
)

SR = 16000


def _music(channels: int = 2, seconds: float = 3.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(SR * seconds)
    t = np.arange(n) / SR
    env = 0.3 + 0.7 * np.abs(np.sin(2 * np.pi * 1.5 * t))
    x = [
        env * (0.4 * np.sin(2 * np.pi * (220 + 110 * c) * t) + 0.15 * rng.standard_normal(n))
        for c in range(channels)
    ]
    return np.stack(x).astype(np.float32)


def _ir() -> np.ndarray:
    return preset("room", SR)[:, :3000]


FACTORIES = {
    "gain": lambda: [Gain(db=-3.0)],
    "eq": lambda: [EQ([EqBand("peak", 1000, 1.0, 4.0), EqBand("highpass", 80)])],
    "delay": lambda: [Delay(time_ms=30.0, feedback=0.5, mix=0.3)],
    "delay_pp": lambda: [Delay(time_ms=30.0, feedback=0.5, mix=0.3, ping_pong=True)],
    "reverb": lambda: [
        Reverb(_ir(), mix=0.3, pre_delay_ms=5.0, partitions=PartitionedIR.build(_ir(), 512))
    ],
    "compressor": lambda: [Compressor(-20.0, 3.0, 5.0, 50.0, makeup_db=2.0, knee_db=4.0)],
    "limiter": lambda: [Limiter(ceiling_db=-3.0, release_ms=40.0)],
    "fade": lambda: [Fade(in_ms=300.0, out_ms=500.0, curve="sine")],
    "trim": lambda: [Trim(start_s=0.5, end_s=2.0)],
    "resample": lambda: [Resample(rate=22050)],
    "channels": lambda: [Channels("mono")],
    "normalize_peak": lambda: [Normalize("peak", -1.0)],
    "normalize_lufs": lambda: [Normalize("loudness", -16.0)],
    "everything": lambda: [
        Trim(start_s=0.1),
        EQ([EqBand("lowshelf", 150, 0.7071, 3.0)]),
        Compressor(-18.0, 2.0, 10.0, 100.0),
        Reverb(_ir(), mix=0.2, partitions=PartitionedIR.build(_ir(), 1024)),
        Delay(time_ms=80.0, feedback=0.3, mix=0.2),
        Normalize("loudness", -14.0),
        Limiter(ceiling_db=-1.0, release_ms=50.0),
        Fade(in_ms=100.0, out_ms=100.0),
        Resample(rate=8000),
    ],
}


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_block_size_invariance_and_determinism(name: str) -> None:
    x = _music()
    a, sr_a = Chain(FACTORIES[name]()).process_array(x, SR, block_frames=1024)
    b, sr_b = Chain(FACTORIES[name]()).process_array(x, SR, block_frames=65536)
    c, _ = Chain(FACTORIES[name]()).process_array(x, SR, block_frames=1024)
    assert sr_a == sr_b
    assert a.dtype == np.float32 and a.flags.c_contiguous
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)


def test_lengths_reported() -> None:
    x = _music(seconds=1.0)
    ir = _ir()
    y, _ = Chain([Reverb(ir, mix=0.5, partitions=PartitionedIR.build(ir, 512))]).process_array(
        x, SR, 1000
    )
    assert y.shape == (2, x.shape[1] + ir.shape[1] - 1)
    y, _ = Chain([Reverb(ir, mix=0.5, tail=False)]).process_array(x, SR, 1000)
    assert y.shape == x.shape
    y, _ = Chain([Trim(0.25, 0.75)]).process_array(x, SR)
    assert y.shape == (2, SR // 2)
    y, sr = Chain([Resample(rate=48000)]).process_array(x, SR)
    assert sr == 48000 and abs(y.shape[1] - 3 * x.shape[1]) <= 2
    y, _ = Chain([Limiter(-1.0, 10.0), Fade(10.0, 10.0)]).process_array(x, SR, 777)
    assert y.shape == x.shape
    assert Chain([Channels("mono"), Resample(rate=8000)]).configure(SR, 2) == (8000, 1)


def _copies(x: np.ndarray, block_frames: int) -> Callable[[], Iterator[np.ndarray]]:
    """A source of C-contiguous copies of x's blocks, as a file reader gives."""

    def source() -> Iterator[np.ndarray]:
        for start in range(0, x.shape[1], block_frames):
            yield np.ascontiguousarray(x[:, start : start + block_frames])

    return source


@pytest.mark.parametrize("channels", [1, 2, 3])
def test_in_place_chain_writes_the_samples_streaming_gives(channels: int) -> None:
    """EQ and Gain write into the output through views of the input's blocks; the samples are
    those of the streaming path (each block a C-contiguous copy through ``process``), and the
    input is left alone."""
    x = _music(channels)
    before = x.copy()
    bands = [EqBand("peak", 200.0 * (i + 1), 1.0, (-1.0) ** i * 2.0) for i in range(6)]

    def effects() -> list[Effect]:
        return [Gain(db=-2.0), EQ(bands), Gain(db=1.5)]

    fast, sr = Chain(effects()).process_array(x, SR, block_frames=4097)
    streamed: list[np.ndarray] = []
    Chain(effects()).run(_copies(x, 4097), streamed.append, SR, channels, x.shape[1])
    assert sr == SR and fast.shape == x.shape and fast.flags.c_contiguous
    np.testing.assert_array_equal(fast, np.concatenate(streamed, axis=1))
    np.testing.assert_array_equal(x, before)
    assert not np.array_equal(fast, x)


def test_output_grows_for_an_unannounced_tail_and_is_cut_to_what_came() -> None:
    """A delay's echoes come beyond the input's length, a trim gives fewer frames: the output
    holds exactly what the chain gave, in order."""
    x = _music(seconds=1.0)
    for effects in ([Delay(time_ms=100.0, feedback=0.6, mix=0.5)], [Trim(0.1, 0.6)]):
        whole, _ = Chain(effects).process_array(x, SR, block_frames=1000)
        parts: list[np.ndarray] = []
        Chain(effects).run(_copies(x, 1000), parts.append, SR, 2, x.shape[1])
        np.testing.assert_array_equal(whole, np.concatenate(parts, axis=1))
        assert whole.flags.c_contiguous


def test_normalize_peak_target() -> None:
    x = _music()
    for target in (-1.0, -12.5):
        y, _ = Chain(
            [EQ([EqBand("peak", 300, 1.0, 6.0)]), Normalize("peak", target)]
        ).process_array(x, SR, 4000)
        assert peak_db(y) == pytest.approx(target, abs=0.01)


def test_normalize_loudness_target() -> None:
    sr = 48000
    t = np.arange(sr * 5) / sr
    rng = np.random.default_rng(5)
    x = (
        np.stack(
            [
                (0.2 + 0.8 * np.abs(np.sin(2 * np.pi * 0.7 * t))) * rng.standard_normal(t.size)
                for _ in range(2)
            ]
        ).astype(np.float32)
        * 0.1
    )
    y, _ = Chain([Normalize("loudness", -20.0)]).process_array(x, sr, 4000)
    meter = LoudnessMeter(sr, 2)
    meter.add(y)
    assert meter.integrated() == pytest.approx(-20.0, abs=0.01)
    measured = pyloudnorm.Meter(sr).integrated_loudness(y.T.astype(np.float64))
    assert measured == pytest.approx(-20.0, abs=0.1)


def test_normalize_silence_is_unity_and_needs_chain() -> None:
    z = np.zeros((1, 8000), np.float32)  # 0.5 s: loudness needs one 400 ms block
    y, _ = Chain([Normalize("loudness", -14.0)]).process_array(z, SR)
    np.testing.assert_array_equal(y, z)
    n = Normalize("peak", -1.0)
    n.configure(SR, 1)
    with pytest.raises(RuntimeError):
        n.process(z)


def _source(x: np.ndarray, block: int):  # type: ignore[no-untyped-def]
    def make() -> Iterator[np.ndarray]:
        for s in range(0, x.shape[1], block):
            yield x[:, s : s + block]

    return make


def test_progress_reaches_one_over_all_passes() -> None:
    x = _music(seconds=1.0)
    seen: list[float] = []
    out: list[np.ndarray] = []
    effects: list[Effect] = [Gain(-1.0), Normalize("peak", -3.0), Gain(1.0)]
    fmt = Chain(effects).run(_source(x, 1000), out.append, SR, 2, x.shape[1], progress=seen.append)
    assert fmt == (SR, 2)
    assert seen[-1] == 1.0
    assert all(b >= a for a, b in itertools.pairwise(seen))
    assert len(seen) >= 2 * 16  # at least once per block, both passes
    assert 0.45 <= seen[15] <= 0.55  # end of the analysis pass is half way
    assert sum(o.shape[1] for o in out) == x.shape[1]


def test_timed_chain_adds_each_effects_time_and_gives_the_same_samples() -> None:
    """`Chain.seconds` (the actors' per-effect spans) counts every pass and every tail piece
    of each effect, and timing changes nothing in the output."""
    import time

    x = _music(seconds=1.0)

    def effects() -> list[Effect]:
        return [Gain(-1.0), Normalize("peak", -3.0), Delay(time_ms=100.0, feedback=0.6, mix=0.5)]

    plain: list[np.ndarray] = []
    Chain(effects()).run(_copies(x, 1000), plain.append, SR, 2, x.shape[1])
    timed_chain = Chain(effects())
    timed_chain.seconds = [0.0, 0.0, 0.0]
    timed: list[np.ndarray] = []
    started = time.perf_counter()
    timed_chain.run(_copies(x, 1000), timed.append, SR, 2, x.shape[1])
    wall = time.perf_counter() - started
    np.testing.assert_array_equal(np.concatenate(plain, axis=1), np.concatenate(timed, axis=1))
    assert all(s > 0.0 for s in timed_chain.seconds)
    assert sum(timed_chain.seconds) <= wall  # parts of the run, never more than it
    assert Chain(effects()).seconds is None  # off unless asked for


def test_should_stop_raises() -> None:
    x = _music(seconds=1.0)
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] > 3

    out: list[np.ndarray] = []
    with pytest.raises(Stopped):
        Chain([Gain(0.0)]).run(_source(x, 1000), out.append, SR, 2, x.shape[1], should_stop=stop)
    assert len(out) == 3


def test_warmup_runs() -> None:
    warmup()


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_normalize_peak_refuses_a_block_holding_nan_instead_of_skipping_it(bad: float) -> None:
    x = _music()
    x[1, 5000] = bad  # in the second 4000-frame block
    with pytest.raises(ValueError, match="NaN or infinite"):
        Chain([Normalize("peak", -1.0)]).process_array(x, SR, 4000)
    with pytest.raises(ValueError, match="NaN or infinite"):
        Chain([Normalize("loudness", -16.0)]).process_array(x, SR, 4000)


def test_normalize_loudness_refuses_a_stream_shorter_than_one_gating_block() -> None:
    """Below 400 ms BS.1770 measures nothing: a refusal, never an unnormalised pass-through."""
    x = _music(seconds=0.39)
    with pytest.raises(ValueError, match="400 ms"):
        Chain([Normalize("loudness", -16.0)]).process_array(x, SR)
    y, _ = Chain([Normalize("loudness", -16.0)]).process_array(_music(seconds=0.4), SR)
    assert y.shape == (2, int(0.4 * SR))
