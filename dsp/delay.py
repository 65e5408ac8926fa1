"""Feedback delay (echo), optionally ping-pong."""

import math

import numpy as np
from numpy.typing import NDArray

from dsp.jit import kernel

MAX_TAIL_S = 10.0
TAIL_FLOOR_DB = -120.0


@kernel
def feedback_delay(
    x: NDArray[np.float32],
    line: NDArray[np.float64],
    pos: int,
    feedback: float,
    mix: float,
    ping_pong: bool,
) -> tuple[NDArray[np.float32], int]:
    """d[n] = w[n - D] with w[n] = x[n] + feedback * d'[n];  y = (1 - mix) x + mix d.

    ``line`` (channels, D) float64 is the circular buffer of w, ``pos`` its read/write index;
    both carry over between blocks. Plain delay: d' = d of the same channel, i.e.
    d[n] = x[n-D] + feedback d[n-D]. Ping-pong: d' of channel c is d of channel c+1 (mod channels),
    so for stereo the feedback crosses over and the echoes of a left-only input alternate
    L (t = D), R (2D, x feedback), L (3D, x feedback^2), ...; mono is unchanged.
    Returns the output block and the new ``pos``.
    """
    channels, n = x.shape
    size = line.shape[1]
    y = np.empty_like(x)
    dry = 1.0 - mix
    if not ping_pong or channels == 1:
        for c in range(channels):
            i = 0
            p = pos
            while i < n:
                # a run that does not wrap: reads and writes hit distinct slots, so it vectorises
                run = min(n - i, size - p)
                for j in range(run):
                    d = line[c, p + j]
                    v = np.float64(x[c, i + j])
                    line[c, p + j] = v + feedback * d
                    y[c, i + j] = dry * v + mix * d
                i += run
                p = (p + run) % size
        return y, (pos + n) % size
    d = np.empty(channels, dtype=np.float64)
    p = pos
    for i in range(n):
        for c in range(channels):
            d[c] = line[c, p]
        for c in range(channels):
            v = np.float64(x[c, i])
            src = c + 1 if c + 1 < channels else 0
            line[c, p] = v + feedback * d[src]
            y[c, i] = dry * v + mix * d[c]
        p += 1
        if p == size:
            p = 0
    return y, p


class Delay:
    """Echo: d[n] = x[n-D] + feedback d[n-D]; y = (1 - mix) x + mix d; D = round(time_ms fs/1000).

    ``feedback`` in [0, 0.99], ``mix`` in [0, 1]. ``ping_pong`` crosses the feedback between
    channels (see ``feedback_delay``). flush() returns the tail in whole periods of D frames:
    one period replays what the delay line holds, each further one is ``feedback`` times quieter;
    it stops after 1 + ceil(-6 / log10(feedback)) periods (the echoes have decayed by 120 dB from
    the start of the tail) or at 10 s, whichever is shorter, and is empty if the line is silent.
    The length depends only on the signal, not on block sizes.
    """

    def __init__(
        self, time_ms: float, feedback: float, mix: float, ping_pong: bool = False
    ) -> None:
        if not (time_ms > 0.0 and math.isfinite(time_ms)):
            raise ValueError(f"delay time_ms must be > 0, got {time_ms}")
        if not 0.0 <= feedback <= 0.99:
            raise ValueError(f"delay feedback must be in [0, 0.99], got {feedback}")
        if not 0.0 <= mix <= 1.0:
            raise ValueError(f"delay mix must be in [0, 1], got {mix}")
        self.time_ms = float(time_ms)
        self.feedback = float(feedback)
        self.mix = float(mix)
        self.ping_pong = bool(ping_pong)
        self._sample_rate = 1
        self._line = np.zeros((1, 1), dtype=np.float64)
        self._pos = 0

    def configure(self, sample_rate: int, channels: int) -> tuple[int, int]:
        size = max(1, round(self.time_ms * sample_rate / 1000.0))
        self._sample_rate = sample_rate
        self._line = np.zeros((channels, size), dtype=np.float64)
        self._pos = 0
        return sample_rate, channels

    def process(self, block: NDArray[np.float32]) -> NDArray[np.float32]:
        y, self._pos = feedback_delay(
            block, self._line, self._pos, self.feedback, self.mix, self.ping_pong
        )
        out: NDArray[np.float32] = y
        return out

    def tail_frames(self) -> int:
        """Frames flush() will emit for the current delay-line content."""
        size = self._line.shape[1]
        if not np.any(self._line):
            return 0
        periods = 1
        if self.feedback > 0.0:
            periods += math.ceil(TAIL_FLOOR_DB / 20.0 / math.log10(self.feedback))
        cap = math.ceil(MAX_TAIL_S * self._sample_rate)
        return int(min(periods * size, max(cap, size)))

    def flush(self) -> NDArray[np.float32]:
        n = self.tail_frames()
        return self.process(np.zeros((self._line.shape[0], n), dtype=np.float32))
