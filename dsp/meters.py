"""Every per-file meter in one numba pass per block: sample peak, RMS, DC offset, clipping,
true peak and BS.1770 / EBU R128 loudness (integrated, momentary and short-term maxima, range).

`FileMeter` gives the same figures as `LevelMeter`, `LoudnessMeter` and `TruePeakMeter` fed the
same blocks (loudness and true peak bit for bit; peak, RMS and DC offset within float
rounding), from one kernel call per block instead of one pass per meter.
"""

import math

import numpy as np
from numpy.typing import NDArray

from dsp.jit import kernel
from dsp.loudness import NON_FINITE, LoudnessMeter, loudness_steps_kernel
from dsp.truepeak import TruePeakMeter, true_peak_kernel


@kernel
def meter_block(
    x: NDArray[np.floating],
    sos: NDArray[np.float64],
    state: NDArray[np.float64],
    weights: NDArray[np.float64],
    sample_rate: int,
    counters: NDArray[np.int64],
    accumulator: NDArray[np.float64],
    energies: NDArray[np.float64],
    lengths: NDArray[np.int64],
    clip_level: float,
    levels: NDArray[np.float64],
    phases: NDArray[np.float64],
    history: NDArray[np.float64],
    peaks: NDArray[np.float64],
) -> int:
    """Loudness steps and levels (`loudness_steps_kernel`), then the true peak
    (`true_peak_kernel`) of one (channels, n) block; -1 if a sample is NaN or infinite."""
    closed = loudness_steps_kernel(
        x, sos, state, weights, sample_rate, counters, accumulator, energies, lengths,
        clip_level, levels,
    )  # fmt: skip
    if closed >= 0:
        true_peak_kernel(x, phases, history, peaks)
    return closed


class FileMeter(LoudnessMeter):
    """The full measurement of a stream, block by block as it passes.

    >>> meter = FileMeter(48_000, 2)
    >>> meter.add(np.zeros((2, 4800), np.float32)); meter.peak_db(), meter.true_peak_db()
    (-inf, -inf)
    """

    def __init__(self, sample_rate: int, channels: int, clip_level: float = 1.0) -> None:
        super().__init__(sample_rate, channels, clip_level)
        self._true_peak = TruePeakMeter(sample_rate, channels)

    def add(self, block: NDArray[np.float32] | NDArray[np.float64]) -> None:
        """Feed (channels, n) samples; ValueError for a NaN or infinite one (the meter is then
        spoiled)."""
        if block.shape[0] != self.channels:
            raise ValueError(f"expected {self.channels} channels, got {block.shape[0]}")
        energies, lengths = self._room(block.shape[1])
        tp = self._true_peak
        closed = meter_block(
            np.ascontiguousarray(block), self._sos, self._state, self._weights,
            self.sample_rate, self._counters, self._accumulator, energies, lengths,
            self.clip_level, self._levels, tp.phases, tp._history, tp._peaks,
        )  # fmt: skip
        if closed < 0:
            raise ValueError(NON_FINITE)
        self.frames += block.shape[1]
        self._keep(closed, energies, lengths)

    def warm(self, block: NDArray[np.float32] | NDArray[np.float64], first_step: int) -> None:
        """Settle the filters and the true-peak history on `block` (the frames just before a
        segment) without measuring it (`LoudnessMeter.warm`)."""
        super().warm(block, first_step)
        self._levels[:] = 0.0
        self._true_peak.merge_reset()

    def merge(self, later: LoudnessMeter) -> None:
        """Join the measurement of the next segment of the same stream (`warm`ed on the frames
        before it): levels add up, peaks take the maximum."""
        super().merge(later)
        if isinstance(later, FileMeter):
            # A copy: a meter that came back from another process may hold read-only arrays.
            levels = self._levels.copy()
            levels[:, 0] = np.maximum(levels[:, 0], later._levels[:, 0])
            levels[:, 1:] += later._levels[:, 1:]
            self._levels = levels
            self._true_peak.merge(later._true_peak)

    def true_peak_db(self) -> float:
        """True peak in dBTP; -inf for digital silence."""
        return self._true_peak.true_peak_db()

    def peak_db(self) -> float:
        """Sample peak over all channels, dBFS; -inf for silence."""
        peak = float(self._levels[:, 0].max()) if self.channels else 0.0
        return 20.0 * math.log10(peak) if peak > 0.0 else -math.inf

    def rms_db(self) -> float:
        """RMS over all channels and samples, dBFS; -inf for silence."""
        squares = float(self._levels[:, 1].sum())
        if self.frames == 0 or squares == 0.0:
            return -math.inf
        return 10.0 * math.log10(squares / (self.frames * self.channels))

    def dc_offset(self) -> float:
        """The largest |mean| of a channel, as a fraction of full scale (0.01 is 1 %)."""
        if self.frames == 0:
            return 0.0
        return float(np.max(np.abs(self._levels[:, 2]))) / self.frames

    @property
    def clipped_samples(self) -> int:
        return int(self._levels[:, 3].sum())

    @property
    def clipped(self) -> bool:
        return self.clipped_samples > 0
