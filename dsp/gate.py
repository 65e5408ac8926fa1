"""Noise gate with hysteresis, hold and lookahead."""

import math

import numpy as np
from numpy.typing import NDArray

from dsp.jit import kernel
from dsp.latency import Lookahead

HYSTERESIS_DB = 6.0
"""The gate opens above the threshold and closes only below threshold - 6 dB."""
DETECTOR_MS = 10.0
"""Release time of the peak detector, so zero crossings inside a word do not count as quiet."""
LOOKAHEAD_EXTRA_MS = 2.0
"""Lookahead beyond the attack time, so the gate is fully open before the first transient."""


@kernel
def gate_kernel(
    x: NDArray[np.float32],
    open_level: float,
    close_level: float,
    range_db: float,
    attack_step: float,
    release_step: float,
    hold: int,
    decay: float,
    delay: NDArray[np.float64],
    state: NDArray[np.float64],
    counters: NDArray[np.int64],
) -> NDArray[np.float32]:
    """Gate with L = delay.shape[1] frames of lookahead; channels share one gain.

    Detector: e[n] = max(max_c |x_c[n]|, decay e[n-1]). The gate opens when e > open_level and,
    once open, stays open while e >= close_level and for `hold` frames after it fell below.
    The gain (dB) moves towards 0 (open) by `attack_step` per frame and towards -range_db
    (closed) by `release_step` per frame: linear ramps in dB. Output y[n] = x[n-L] 10^(g[n]/20).
    state = [e, g]; counters = [time n, open (0/1), hold frames left].
    """
    channels, n = x.shape
    lookahead = delay.shape[1]
    y = np.empty_like(x)
    env = state[0]
    gain_db = state[1]
    t = counters[0]
    is_open = counters[1]
    left = counters[2]
    floor = 10.0 ** (-range_db / 20.0)
    for i in range(n):
        peak = 0.0
        for c in range(channels):
            a = abs(np.float64(x[c, i]))
            if a > peak:
                peak = a
        env = max(peak, decay * env)
        if env > open_level:
            is_open = 1
            left = hold
        elif is_open == 1:
            if env >= close_level:
                left = hold
            elif left > 0:
                left -= 1
            else:
                is_open = 0
        if is_open == 1:
            gain_db = min(0.0, gain_db + attack_step)
        else:
            gain_db = max(-range_db, gain_db - release_step)
        if gain_db >= 0.0:
            g = 1.0
        elif gain_db <= -range_db:
            g = floor
        else:
            g = 10.0 ** (gain_db / 20.0)
        for c in range(channels):
            current = np.float64(x[c, i])
            if lookahead > 0:
                delayed = delay[c, t % lookahead]
                delay[c, t % lookahead] = current
            else:
                delayed = current
            y[c, i] = delayed * g
        t += 1
    state[0] = env
    state[1] = gain_db
    counters[0] = t
    counters[1] = is_open
    counters[2] = left
    return y


class Gate(Lookahead):
    """Attenuate by range_db whatever stays below threshold_db (dBFS sample peak).

    It opens when the level rises above the threshold and closes when it has stayed under
    threshold - 6 dB for hold_ms; the gain ramps linearly in dB, from closed to open over
    attack_ms and back over release_ms. The detector looks attack_ms + 2 ms ahead, so the
    gate is open when a word's first consonant arrives. That latency is compensated: output
    aligns with input, same length. A stream starts closed.
    """

    def __init__(
        self,
        threshold_db: float = -50.0,
        range_db: float = 60.0,
        attack_ms: float = 1.0,
        hold_ms: float = 50.0,
        release_ms: float = 100.0,
    ) -> None:
        if not math.isfinite(threshold_db):
            raise ValueError(f"gate threshold_db must be finite, got {threshold_db}")
        if not range_db >= 0.0:
            raise ValueError(f"gate range_db must be >= 0, got {range_db}")
        if min(attack_ms, hold_ms, release_ms) < 0.0:
            raise ValueError("gate attack_ms, hold_ms and release_ms must be >= 0")
        self.threshold_db = float(threshold_db)
        self.range_db = float(range_db)
        self.attack_ms = float(attack_ms)
        self.hold_ms = float(hold_ms)
        self.release_ms = float(release_ms)
        self._setup(48000, 1)

    def _setup(self, sample_rate: int, channels: int) -> None:
        per_ms = sample_rate / 1000.0
        self._lookahead = round((self.attack_ms + LOOKAHEAD_EXTRA_MS) * per_ms)
        self._attack = self.range_db / max(self.attack_ms * per_ms, 1.0)
        self._release = self.range_db / max(self.release_ms * per_ms, 1.0)
        self._hold = round(self.hold_ms * per_ms)
        self._decay = math.exp(-1.0 / (DETECTOR_MS * per_ms))
        self._delay = np.zeros((channels, self._lookahead), dtype=np.float64)
        self._state = np.array([0.0, -self.range_db], dtype=np.float64)
        self._counters = np.zeros(3, dtype=np.int64)
        self._start_latency(channels, self._lookahead)

    def configure(self, sample_rate: int, channels: int) -> tuple[int, int]:
        self._setup(sample_rate, channels)
        return sample_rate, channels

    def _render(self, block: NDArray[np.float32]) -> NDArray[np.float32]:
        y: NDArray[np.float32] = gate_kernel(
            block,
            10.0 ** (self.threshold_db / 20.0),
            10.0 ** ((self.threshold_db - HYSTERESIS_DB) / 20.0),
            self.range_db,
            self._attack,
            self._release,
            self._hold,
            self._decay,
            self._delay,
            self._state,
            self._counters,
        )
        return y
