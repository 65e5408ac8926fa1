"""Compressor and lookahead limiter."""

import math

import numpy as np
from numpy.typing import NDArray

from dsp.jit import kernel
from dsp.latency import Lookahead


def smoothing_coefficient(time_ms: float, sample_rate: int) -> float:
    """One-pole coefficient alpha = exp(-1 / (tau fs)); 0 (instant) for tau = 0."""
    if time_ms <= 0.0:
        return 0.0
    return math.exp(-1.0 / (time_ms * 1e-3 * sample_rate))


@kernel
def compressor_kernel(
    x: NDArray[np.float32],
    threshold_db: float,
    ratio: float,
    knee_db: float,
    attack: float,
    release: float,
    makeup_db: float,
    state: NDArray[np.float64],
) -> NDArray[np.float32]:
    """Feed-forward compressor after Giannoulis, Massberg & Reiss (JAES 2012).

    Detector: linked peak level xg = 20 log10(max_c |x_c[n]|). Gain computer with soft knee W:
      2(xg - T) < -W:  yg = xg;   2|xg - T| <= W:  yg = xg + (1/R - 1)(xg - T + W/2)^2 / (2W);
      otherwise:       yg = T + (xg - T)/R.
    Level-domain smoothing of xl = xg - yg (smooth branching peak detector):
      yl = a_A yl + (1 - a_A) xl if xl > yl else a_R yl + (1 - a_R) xl.
    Gain (dB) = makeup - yl, applied to every channel. ``state[0]`` holds yl.
    """
    channels, n = x.shape
    y = np.empty_like(x)
    yl = state[0]
    slope = 1.0 / ratio - 1.0
    for i in range(n):
        peak = 0.0
        for c in range(channels):
            a = abs(np.float64(x[c, i]))
            if a > peak:
                peak = a
        xg = 20.0 * math.log10(max(peak, 1e-30))
        over = xg - threshold_db
        if 2.0 * over < -knee_db:
            yg = xg
        elif 2.0 * abs(over) <= knee_db and knee_db > 0.0:
            t = over + knee_db / 2.0
            yg = xg + slope * t * t / (2.0 * knee_db)
        else:
            yg = threshold_db + over / ratio
        xl = xg - yg
        coefficient = attack if xl > yl else release
        yl = coefficient * yl + (1.0 - coefficient) * xl
        g = 10.0 ** ((makeup_db - yl) / 20.0)
        for c in range(channels):
            y[c, i] = np.float64(x[c, i]) * g
    state[0] = yl
    return y


class Compressor:
    """Feed-forward, stereo-linked peak compressor (see ``compressor_kernel`` for the formulas).

    attack_ms / release_ms are the time constants tau of the one-pole smoother
    (alpha = exp(-1/(tau fs))); knee_db is the full knee width W.
    """

    def __init__(
        self,
        threshold_db: float,
        ratio: float,
        attack_ms: float,
        release_ms: float,
        makeup_db: float = 0.0,
        knee_db: float = 0.0,
    ) -> None:
        if not ratio >= 1.0:
            raise ValueError(f"compressor ratio must be >= 1, got {ratio}")
        if attack_ms < 0.0 or release_ms < 0.0:
            raise ValueError("compressor attack_ms and release_ms must be >= 0")
        if knee_db < 0.0:
            raise ValueError(f"compressor knee_db must be >= 0, got {knee_db}")
        self.threshold_db = float(threshold_db)
        self.ratio = float(ratio)
        self.attack_ms = float(attack_ms)
        self.release_ms = float(release_ms)
        self.makeup_db = float(makeup_db)
        self.knee_db = float(knee_db)
        self._channels = 1
        self._attack = 0.0
        self._release = 0.0
        self._state = np.zeros(1, dtype=np.float64)

    def configure(self, sample_rate: int, channels: int) -> tuple[int, int]:
        self._channels = channels
        self._attack = smoothing_coefficient(self.attack_ms, sample_rate)
        self._release = smoothing_coefficient(self.release_ms, sample_rate)
        self._state = np.zeros(1, dtype=np.float64)
        return sample_rate, channels

    def process(self, block: NDArray[np.float32]) -> NDArray[np.float32]:
        out: NDArray[np.float32] = compressor_kernel(
            block,
            self.threshold_db,
            self.ratio,
            self.knee_db,
            self._attack,
            self._release,
            self.makeup_db,
            self._state,
        )
        return out

    def flush(self) -> NDArray[np.float32]:
        return np.zeros((self._channels, 0), dtype=np.float32)


@kernel
def limiter_kernel(
    x: NDArray[np.float32],
    ceiling: float,
    release: float,
    delay: NDArray[np.float64],
    mins: NDArray[np.float64],
    min_index: NDArray[np.int64],
    box: NDArray[np.float64],
    state: NDArray[np.float64],
    counters: NDArray[np.int64],
) -> NDArray[np.float32]:
    """Lookahead limiter with L = delay.shape[1] frames of lookahead (windows of L + 1).

    r[n] = min(1, ceiling / max_c |x_c[n]|) is the gain sample n needs. h[n] = min(r[n-L..n])
    (monotonic deque ``mins``/``min_index``), g[n] = mean(h[n-L..n]) (running sum in ``box``),
    then release smoothing that may only lower the gain: s[n] = g[n] if g[n] < s[n-1] else
    release s[n-1] + (1 - release) g[n]. Output y[n] = x[n-L] s[n]. Every h in the averaging
    window of y[n] is <= r[n-L], so |y[n]| <= ceiling; a final clamp absorbs rounding.
    state = [running box sum, s]; counters = [time n, deque head, deque tail].
    """
    channels, n = x.shape
    lookahead = delay.shape[1]
    size = lookahead + 1
    y = np.empty_like(x)
    total = state[0]
    smooth = state[1]
    t = counters[0]
    head = counters[1]
    tail = counters[2]
    limit = np.float32(ceiling)
    if np.float64(limit) > ceiling:
        limit = np.nextafter(limit, np.float32(0.0))
    for i in range(n):
        slot = t % size
        peak = 0.0
        for c in range(channels):
            a = abs(np.float64(x[c, i]))
            if a > peak:
                peak = a
        r = ceiling / peak if peak > ceiling else 1.0
        while tail > head and mins[(tail - 1) % size] >= r:
            tail -= 1
        mins[tail % size] = r
        min_index[tail % size] = t
        tail += 1
        while min_index[head % size] <= t - size:
            head += 1
        h = mins[head % size]
        total += h - box[slot]
        box[slot] = h
        g = total / size
        smooth = g if g < smooth else release * smooth + (1.0 - release) * g
        for c in range(channels):
            current = np.float64(x[c, i])
            if lookahead > 0:
                delayed = delay[c, t % lookahead]
                delay[c, t % lookahead] = current
            else:
                delayed = current
            v = np.float32(delayed * smooth)
            if v > limit:
                v = limit
            elif v < -limit:
                v = -limit
            y[c, i] = v
        t += 1
    state[0] = total
    state[1] = smooth
    counters[0] = t
    counters[1] = head
    counters[2] = tail
    return y


class Limiter(Lookahead):
    """Brick-wall lookahead limiter: no output sample exceeds 10^(ceiling_db/20).

    Gain reductions ramp in linearly over lookahead_ms (they are anticipated) and recover with a
    one-pole release (alpha = exp(-1/(tau fs))). The lookahead latency is compensated: the first
    L output frames are dropped and flush() returns the last L, so output aligns with input and
    has the same length.

    ``sample_step`` > 0 is the spacing of the values the output will be rounded to (2^-15 for
    16-bit PCM): the limiter then aims at the largest multiple of it at or under the ceiling,
    so rounding to the nearest step cannot carry a sample over the ceiling.
    """

    def __init__(
        self,
        ceiling_db: float,
        release_ms: float,
        lookahead_ms: float = 5.0,
        sample_step: float = 0.0,
    ) -> None:
        if not (math.isfinite(ceiling_db) and ceiling_db <= 0.0):
            raise ValueError(f"limiter ceiling_db must be <= 0 dBFS, got {ceiling_db}")
        if release_ms < 0.0 or lookahead_ms < 0.0:
            raise ValueError("limiter release_ms and lookahead_ms must be >= 0")
        if not (0.0 <= sample_step < 1.0):
            raise ValueError(f"limiter sample_step must be in [0, 1), got {sample_step}")
        self.ceiling_db = float(ceiling_db)
        self.release_ms = float(release_ms)
        self.lookahead_ms = float(lookahead_ms)
        self.sample_step = float(sample_step)
        self._configure_state(48000, 1)

    @property
    def ceiling(self) -> float:
        """The linear level the output is held at or under (on the sample grid, if any)."""
        ceiling = float(10.0 ** (self.ceiling_db / 20.0))
        if self.sample_step > 0.0:
            ceiling = max(math.floor(ceiling / self.sample_step), 1) * self.sample_step
        return ceiling

    def _configure_state(self, sample_rate: int, channels: int) -> None:
        self._lookahead = max(0, round(self.lookahead_ms * sample_rate / 1000.0))
        size = self._lookahead + 1
        self._release = smoothing_coefficient(self.release_ms, sample_rate)
        self._delay = np.zeros((channels, self._lookahead), dtype=np.float64)
        self._mins = np.ones(size, dtype=np.float64)
        self._min_index = np.full(size, -(2**62), dtype=np.int64)
        self._box = np.ones(size, dtype=np.float64)
        self._state = np.array([float(size), 1.0], dtype=np.float64)
        self._counters = np.zeros(3, dtype=np.int64)
        self._start_latency(channels, self._lookahead)

    def configure(self, sample_rate: int, channels: int) -> tuple[int, int]:
        self._configure_state(sample_rate, channels)
        return sample_rate, channels

    def _render(self, block: NDArray[np.float32]) -> NDArray[np.float32]:
        y: NDArray[np.float32] = limiter_kernel(
            block,
            self.ceiling,
            self._release,
            self._delay,
            self._mins,
            self._min_index,
            self._box,
            self._state,
            self._counters,
        )
        return y
