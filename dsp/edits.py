"""Fades and trimming."""

import math

import numpy as np
from numpy.typing import NDArray

from dsp.buffers import FrameQueue

CURVES = ("linear", "sine", "exponential")
_EXP_K = 5.0


def fade_curve(t: NDArray[np.float64], curve: str) -> NDArray[np.float64]:
    """Gain for position t in [0, 1] (0 = silent end, 1 = full level).

    linear: t;  sine: sin(pi t / 2) (equal-power);  exponential: (e^(k t) - 1) / (e^k - 1) with
    k = 5, a convex ramp that starts slowly (about linear in dB over the audible part).
    """
    if curve == "linear":
        return t
    if curve == "sine":
        out: NDArray[np.float64] = np.sin(0.5 * np.pi * t)
        return out
    if curve == "exponential":
        out = np.expm1(_EXP_K * t) / math.expm1(_EXP_K)
        return out
    raise ValueError(f"unknown fade curve {curve!r}; expected one of {', '.join(CURVES)}")


class Fade:
    """Fade in over the first in_ms and out over the last out_ms.

    Fade-in gain of frame i (0-based) is curve(i / N_in), so the first frame is silent; fade-out
    gain of the j-th of the last N_out frames is curve((N_out - 1 - j) / N_out), so the last frame
    is silent. N = round(ms * fs / 1000). The end is unknown while streaming, so the last N_out
    frames are held back (memory bounded by out_ms) and released, faded, by flush(). If the stream
    is shorter than N_out, the held frames get the tail end of the ramp.
    """

    def __init__(self, in_ms: float, out_ms: float, curve: str = "linear") -> None:
        if in_ms < 0.0 or out_ms < 0.0:
            raise ValueError("fade in_ms and out_ms must be >= 0")
        if curve not in CURVES:
            raise ValueError(f"unknown fade curve {curve!r}; expected one of {', '.join(CURVES)}")
        self.in_ms = float(in_ms)
        self.out_ms = float(out_ms)
        self.curve = curve
        self._first = 0
        self._total: int | None = None
        self._setup(48000, 1)

    def _setup(self, sample_rate: int, channels: int) -> None:
        self._channels = channels
        self._n_in = round(self.in_ms * sample_rate / 1000.0)
        self._n_out = round(self.out_ms * sample_rate / 1000.0)
        self._position = self._first
        self._held = FrameQueue(channels)

    def place(self, first: int, total: int) -> None:
        """Render a piece of a known stream: the next stream starts at frame `first` of one of
        `total` frames. The fade-out then needs no holding back, and gives the same bits."""
        self._first = first
        self._total = total
        self._position = first

    def configure(self, sample_rate: int, channels: int) -> tuple[int, int]:
        self._setup(sample_rate, channels)
        return sample_rate, channels

    def process(self, block: NDArray[np.float32]) -> NDArray[np.float32]:
        n = block.shape[1]
        start = self._position
        if start < self._n_in and n:
            stop = min(self._n_in, start + n)
            gains = fade_curve(np.arange(start, stop, dtype=np.float64) / self._n_in, self.curve)
            block = block.copy()
            block[:, : stop - start] = (block[:, : stop - start] * gains).astype(np.float32)
        self._position += n
        if self._total is not None:
            return self._fade_out_at(block, start)
        self._held.push(block)
        release = len(self._held) - self._n_out
        out: NDArray[np.float32] = self._held.pop(max(release, 0))
        return out

    def _fade_out_at(self, block: NDArray[np.float32], start: int) -> NDArray[np.float32]:
        """`block` (frames from `start` on) with the fade-out of a `total`-frame stream: the
        gains flush() gives the last N_out frames, where the frames are."""
        assert self._total is not None
        first_out = self._total - self._n_out
        lo = max(first_out - start, 0)
        if not self._n_out or lo >= block.shape[1]:
            return block
        p = np.arange(start + lo, start + block.shape[1], dtype=np.float64)
        gains = fade_curve((self._total - 1 - p) / self._n_out, self.curve)
        out = block.copy()
        out[:, lo:] = (block[:, lo:] * gains).astype(np.float32)
        return out

    def flush(self) -> NDArray[np.float32]:
        held = len(self._held)
        out: NDArray[np.float32] = self._held.pop_all()
        if held and self._n_out:
            j = np.arange(self._n_out - held, self._n_out, dtype=np.float64)
            gains = fade_curve((self._n_out - 1 - j) / self._n_out, self.curve)
            out = (out * gains).astype(np.float32)
        return out


class Trim:
    """Keep input frames [round(start_s fs), round(end_s fs)); end_s None keeps to the end."""

    def __init__(self, start_s: float, end_s: float | None = None) -> None:
        if not (start_s >= 0.0 and math.isfinite(start_s)):
            raise ValueError(f"trim start_s must be >= 0, got {start_s}")
        if end_s is not None and not end_s > start_s:
            raise ValueError(f"trim end_s must be > start_s, got {end_s} <= {start_s}")
        self.start_s = float(start_s)
        self.end_s = None if end_s is None else float(end_s)
        self._setup(48000, 1)

    def _setup(self, sample_rate: int, channels: int) -> None:
        self._channels = channels
        self._rate = sample_rate
        self._start = round(self.start_s * sample_rate)
        self._end = None if self.end_s is None else round(self.end_s * sample_rate)
        self._position = 0

    def configure(self, sample_rate: int, channels: int) -> tuple[int, int]:
        self._setup(sample_rate, channels)
        return sample_rate, channels

    def input_time(self, t: float) -> float:
        """Output time `t` as input time: the kept part starts at round(start_s fs)."""
        return t + self._start / self._rate

    def process(self, block: NDArray[np.float32]) -> NDArray[np.float32]:
        n = block.shape[1]
        first = self._position
        self._position += n
        lo = max(self._start - first, 0)
        hi = n if self._end is None else min(max(self._end - first, 0), n)
        if lo >= hi:
            return np.zeros((block.shape[0], 0), dtype=np.float32)
        if lo == 0 and hi == n:
            return block
        return np.ascontiguousarray(block[:, lo:hi])

    def flush(self) -> NDArray[np.float32]:
        return np.zeros((self._channels, 0), dtype=np.float32)
