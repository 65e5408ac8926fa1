"""Feedback delay (echo), optionally ping-pong."""

import math

import numpy as np
from numpy.typing import NDArray

from dsp.jit import kernel

MAX_TAIL_S = 60.0
"""Longest tail a Delay appends after its input, in seconds; it is faded out when cut there."""
TAIL_FADE_S = 1.0
"""Length of the linear fade-out of a tail cut at MAX_TAIL_S (no click at the cut)."""
TAIL_FLOOR_DBFS = -90.0
"""A tail ends with the first delay period whose echoes all stay below this output level."""


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
    channels (see ``feedback_delay``). After the input the tail runs in whole periods of D
    frames: the first replays what the delay line holds (output peak mix * max|line|), each
    further one is exactly ``feedback`` times that; it stops before the first period whose peak
    is below TAIL_FLOOR_DBFS (-90 dBFS), so it is empty if the line is silent or mix is 0.
    A tail longer than MAX_TAIL_S (60 s; feedback near 0.99 with long delays) is cut there
    and faded out linearly over its last TAIL_FADE_S (1 s). The tail depends only on the
    signal, not on block sizes; Chain takes it in pieces (``drain``), so memory stays bounded.
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
        self.configure(48000, 1)

    def configure(self, sample_rate: int, channels: int) -> tuple[int, int]:
        size = max(1, round(self.time_ms * sample_rate / 1000.0))
        self._sample_rate = sample_rate
        self._line = np.zeros((channels, size), dtype=np.float64)
        self._pos = 0
        self._tail_total = -1  # not started
        self._tail_done = 0
        self._fade = 0
        return sample_rate, channels

    def process(self, block: NDArray[np.float32]) -> NDArray[np.float32]:
        y, self._pos = feedback_delay(
            block, self._line, self._pos, self.feedback, self.mix, self.ping_pong
        )
        out: NDArray[np.float32] = y
        return out

    def tail_frames(self) -> int:
        """Frames the tail holds for the current delay-line content (see the class doc)."""
        size = self._line.shape[1]
        level = self.mix * float(np.max(np.abs(self._line)))
        floor = 10.0 ** (TAIL_FLOOR_DBFS / 20.0)
        if level < floor:
            return 0
        periods = 1
        if self.feedback > 0.0:
            periods += math.floor(math.log(floor / level) / math.log(self.feedback))
        return int(min(periods * size, self.max_tail_frames))

    @property
    def max_tail_frames(self) -> int:
        return max(1, round(MAX_TAIL_S * self._sample_rate))

    def drain(self, max_frames: int) -> NDArray[np.float32]:
        """The next at most ``max_frames`` frames of the tail; (channels, 0) once it is over."""
        if self._tail_total < 0:
            self._tail_total = self.tail_frames()
            self._tail_done = 0
            if self._tail_total >= self.max_tail_frames:
                self._fade = min(self._tail_total, round(TAIL_FADE_S * self._sample_rate))
        n = max(0, min(max_frames, self._tail_total - self._tail_done))
        y = self.process(np.zeros((self._line.shape[0], n), dtype=np.float32))
        start = self._tail_done
        self._tail_done += n
        fade_start = self._tail_total - self._fade
        if self._fade and self._tail_done > fade_start:
            # gain (F - 1 - j) / F for the j-th of the last F frames: the last one is silent
            j = np.arange(start, self._tail_done, dtype=np.float64) - fade_start
            gains = np.clip((self._fade - 1 - j) / self._fade, 0.0, 1.0)
            y = (y * gains).astype(np.float32)
        return y

    def flush(self) -> NDArray[np.float32]:
        pieces = []
        while (piece := self.drain(65536)).shape[1]:
            pieces.append(piece)
        if not pieces:
            return np.zeros((self._line.shape[0], 0), dtype=np.float32)
        return np.ascontiguousarray(np.concatenate(pieces, axis=1))
