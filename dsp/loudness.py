"""Level measurement: ITU-R BS.1770-4 / EBU R128 loudness (integrated, momentary, short-term,
range), sample peak, RMS, clipping."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from dsp.jit import kernel

ABSOLUTE_GATE_LUFS = -70.0
RELATIVE_GATE_LU = -10.0
LRA_RELATIVE_GATE_LU = -20.0
LRA_LOW_PERCENTILE = 10.0
LRA_HIGH_PERCENTILE = 95.0
MOMENTARY_STEPS = 4
SHORT_TERM_STEPS = 30


def k_weighting_sos(sample_rate: int) -> NDArray[np.float64]:
    """BS.1770 K-weighting (shelf + RLB high-pass) as two sections for any sample rate.

    The analog prototypes (f0, gain, Q) are the ones that reproduce the 48 kHz coefficient table
    of BS.1770-4 exactly through the bilinear transform (the libebur128 derivation).
    """
    f0 = 1681.974450955533
    gain_db = 3.999843853973347
    q = 0.7071752369554196
    k = math.tan(math.pi * f0 / sample_rate)
    vh = 10.0 ** (gain_db / 20.0)
    vb = vh**0.4996667741545416
    a0 = 1.0 + k / q + k * k
    shelf = [
        (vh + vb * k / q + k * k) / a0,
        2.0 * (k * k - vh) / a0,
        (vh - vb * k / q + k * k) / a0,
        1.0,
        2.0 * (k * k - 1.0) / a0,
        (1.0 - k / q + k * k) / a0,
    ]
    f0 = 38.13547087602444
    q = 0.5003270373238773
    k = math.tan(math.pi * f0 / sample_rate)
    a0 = 1.0 + k / q + k * k
    highpass = [1.0, -2.0, 1.0, 1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0]
    return np.array([shelf, highpass], dtype=np.float64)


def channel_weights(channels: int) -> NDArray[np.float64]:
    """BS.1770 weights G_i: 1.0 for L, R, C; 1.41 for the surrounds; LFE excluded.

    5 channels are read as L R C Ls Rs, 6 as 5.1 (L R C LFE Ls Rs); any other count weighs
    every channel 1.0.
    """
    if channels == 5:
        return np.array([1.0, 1.0, 1.0, 1.41, 1.41])
    if channels == 6:
        return np.array([1.0, 1.0, 1.0, 0.0, 1.41, 1.41])
    return np.ones(channels)


def _lufs(power: float) -> float:
    return -0.691 + 10.0 * math.log10(power) if power > 0.0 else -math.inf


def _to_lufs(powers: NDArray[np.float64]) -> NDArray[np.float64]:
    with np.errstate(divide="ignore"):
        return np.asarray(-0.691 + 10.0 * np.log10(powers), dtype=np.float64)


@kernel
def loudness_steps_kernel(
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
) -> int:
    """K-weight, square, weigh by channel and sum per 100 ms step, sample by sample; and in the
    same loop raise levels[c] = [peak |x|, sum x^2, sum x, samples with |x| >= clip_level].

    Step k holds frames [floor(k fs / 10), floor((k + 1) fs / 10)). Each closed step writes its
    weighted energy sum_c G_c sum_n z_c[n]^2 to ``energies`` and its length to ``lengths``;
    returns how many closed. The sums run in frame order whatever the block size, so any
    split of the stream gives the same bits. Two direct-form-I sections per channel; state
    (channels, 3, 2) holds the last two inputs, first-section and second-section outputs;
    counters = [step index, frames in the open step]; accumulator[0] holds the open step's sum.
    Returns -1 if a sample is NaN or infinite (the state is then spoiled). The levels ride on
    the K-weighting loop for free: its recursions, not arithmetic, set the pace.
    """
    channels, n = x.shape
    energy = np.zeros(n, dtype=np.float64)
    bad = 0.0
    b0, b1, b2, a1, a2 = sos[0, 0], sos[0, 1], sos[0, 2], sos[0, 4], sos[0, 5]
    c0, c1, c2, d1, d2 = sos[1, 0], sos[1, 1], sos[1, 2], sos[1, 4], sos[1, 5]
    # Channels in pairs (the last one alone, paired with a zero-weight copy of itself): two
    # independent recursions per loop. Each frame's energy sums channel 0, 1, 2... in order.
    for first in range(0, channels, 2):
        pair = first + 1 < channels
        second = first + 1 if pair else first
        wa, wb = weights[first], weights[second] if pair else 0.0
        row_a, row_b = x[first], x[second]
        x1, x2 = state[first, 0, 0], state[first, 0, 1]
        y1, y2 = state[first, 1, 0], state[first, 1, 1]
        z1, z2 = state[first, 2, 0], state[first, 2, 1]
        u1, u2 = state[second, 0, 0], state[second, 0, 1]
        v1, v2 = state[second, 1, 0], state[second, 1, 1]
        w1, w2 = state[second, 2, 0], state[second, 2, 1]
        peak_a, squares_a, sum_a, clip_a = levels[first, 0], 0.0, 0.0, 0
        peak_b, squares_b, sum_b, clip_b = levels[second, 0], 0.0, 0.0, 0
        for i in range(n):
            xa = np.float64(row_a[i])
            xb = np.float64(row_b[i])
            bad += (xa - xa) + (xb - xb)  # NaN from an infinity or a NaN, else 0
            ma, mb = abs(xa), abs(xb)
            peak_a = ma if ma > peak_a else peak_a
            peak_b = mb if mb > peak_b else peak_b
            squares_a += xa * xa
            squares_b += xb * xb
            sum_a += xa
            sum_b += xb
            clip_a += 1 if ma >= clip_level else 0
            clip_b += 1 if mb >= clip_level else 0
            # Direct form I, the feedback term last: the recursion through y1 (z1) is one
            # multiply and one subtract; everything else overlaps across frames.
            y = (((b0 * xa + b1 * x1) + b2 * x2) - a2 * y2) - a1 * y1
            z = (((c0 * y + c1 * y1) + c2 * y2) - d2 * z2) - d1 * z1
            v = (((b0 * xb + b1 * u1) + b2 * u2) - a2 * v2) - a1 * v1
            w = (((c0 * v + c1 * v1) + c2 * v2) - d2 * w2) - d1 * w1
            x2, x1, y2, y1, z2, z1 = x1, xa, y1, y, z1, z
            u2, u1, v2, v1, w2, w1 = u1, xb, v1, v, w1, w
            energy[i] = (energy[i] + wa * (z * z)) + wb * (w * w)
        levels[first, 0] = peak_a
        levels[first, 1] += squares_a
        levels[first, 2] += sum_a
        levels[first, 3] += clip_a
        if pair:
            levels[second, 0] = peak_b
            levels[second, 1] += squares_b
            levels[second, 2] += sum_b
            levels[second, 3] += clip_b
        state[first, 0, 0], state[first, 0, 1] = x1, x2
        state[first, 1, 0], state[first, 1, 1] = y1, y2
        state[first, 2, 0], state[first, 2, 1] = z1, z2
        if pair:
            state[second, 0, 0], state[second, 0, 1] = u1, u2
            state[second, 1, 0], state[second, 1, 1] = v1, v2
            state[second, 2, 0], state[second, 2, 1] = w1, w2
    if bad != 0.0:
        return -1
    step = counters[0]
    filled = counters[1]
    total = accumulator[0]
    length = (step + 1) * sample_rate // 10 - step * sample_rate // 10
    closed = 0
    for i in range(n):
        total += energy[i]
        filled += 1
        if filled == length:
            energies[closed] = total
            lengths[closed] = length
            closed += 1
            total = 0.0
            filled = 0
            step += 1
            length = (step + 1) * sample_rate // 10 - step * sample_rate // 10
    counters[0] = step
    counters[1] = filled
    accumulator[0] = total
    return closed


def _window_powers(
    energies: NDArray[np.float64], lengths: NDArray[np.int64], steps: int
) -> NDArray[np.float64]:
    """Mean weighted power of every full window of ``steps`` consecutive 100 ms steps."""
    if energies.size < steps:
        return np.zeros(0, dtype=np.float64)
    e = np.concatenate(([0.0], np.cumsum(energies)))
    n = np.concatenate(([0], np.cumsum(lengths)))
    return np.asarray((e[steps:] - e[:-steps]) / (n[steps:] - n[:-steps]), dtype=np.float64)


def _gated(powers: NDArray[np.float64], relative_lu: float) -> NDArray[np.float64]:
    """The powers above the absolute gate (-70 LUFS) and ``relative_lu`` below their mean."""
    above: NDArray[np.float64] = powers[powers > 10.0 ** ((ABSOLUTE_GATE_LUFS + 0.691) / 10.0)]
    if above.size == 0:
        return above
    relative = _lufs(float(above.mean())) + relative_lu
    gated: NDArray[np.float64] = above[above > 10.0 ** ((relative + 0.691) / 10.0)]
    return gated


class LoudnessMeter:
    """Streaming BS.1770-4 / EBU Tech 3341-3342 loudness: integrated, momentary and short-term
    maxima, loudness range.

    Blocks of any size go in through ``add``; one numba pass K-weights, squares and sums them per
    100 ms step and keeps only that sum (10 floats per second of audio). Every measure is then
    a window over whole steps: momentary = 4 steps (400 ms), short-term = 30 steps (3 s), both
    with a 100 ms hop, so the result does not depend on how the stream was cut. Integrated:
    mean power of the 400 ms blocks above -70 LUFS and above (their mean - 10 LU). LRA (Tech
    3342): 95th - 10th percentile of the 3 s values above -70 LUFS and (their mean - 20 LU).
    Only full windows count: a trailing partial step is ignored, a stream shorter than a window
    has no value for it (-inf, or NaN for the range).
    """

    def __init__(self, sample_rate: int, channels: int, clip_level: float = 1.0) -> None:
        self.sample_rate = int(sample_rate)
        self.channels = int(channels)
        self.clip_level = float(clip_level)
        self.frames = 0
        self._levels = np.zeros((self.channels, 4), dtype=np.float64)
        self._sos = k_weighting_sos(self.sample_rate)
        self._state = np.zeros((self.channels, 3, 2), dtype=np.float64)
        self._weights = channel_weights(self.channels)
        self._counters = np.zeros(2, dtype=np.int64)
        self._accumulator = np.zeros(1, dtype=np.float64)
        self._energies: list[NDArray[np.float64]] = []
        self._lengths: list[NDArray[np.int64]] = []

    def add(self, block: NDArray[np.float32] | NDArray[np.float64]) -> None:
        """Feed (channels, n) samples; ValueError for a NaN or infinite one (see `LevelMeter`;
        the meter is then spoiled)."""
        if block.shape[0] != self.channels:
            raise ValueError(f"expected {self.channels} channels, got {block.shape[0]}")
        energies, lengths = self._room(block.shape[1])
        closed = loudness_steps_kernel(
            np.ascontiguousarray(block), self._sos, self._state, self._weights,
            self.sample_rate, self._counters, self._accumulator, energies, lengths,
            self.clip_level, self._levels,
        )  # fmt: skip
        if closed < 0:
            raise ValueError(NON_FINITE)
        self.frames += block.shape[1]
        self._keep(closed, energies, lengths)

    def _room(self, frames: int) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
        """Room for the steps a block of `frames` may close."""
        room = frames * 10 // max(self.sample_rate, 1) + 2
        return np.empty(room, dtype=np.float64), np.empty(room, dtype=np.int64)

    def _keep(self, closed: int, energies: NDArray[np.float64], lengths: NDArray[np.int64]) -> None:
        if closed:
            self._energies.append(energies[:closed])
            self._lengths.append(lengths[:closed])

    def warm(self, block: NDArray[np.float32] | NDArray[np.float64], first_step: int) -> None:
        """Settle the K-weighting filters on `block` (the frames just before a segment) without
        counting it; counting then starts at 100 ms step `first_step` of the whole stream,
        whose step lengths it keeps (see `merge`)."""
        self.add(block)
        self.frames = 0
        self._counters[:] = (first_step, 0)
        self._accumulator[0] = 0.0
        self._energies.clear()
        self._lengths.clear()

    def merge(self, later: LoudnessMeter) -> None:
        """Append the steps of the segment that follows this one (started with `warm` on the
        frames before it, at the step where this one ended): every 400 ms gating block and 3 s
        window over the joined steps is the one an unsplit stream gives."""
        energies, lengths = later._steps()
        self._steps()
        self._energies.append(energies)
        self._lengths.append(lengths)
        self.frames += later.frames

    def _steps(self) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
        if len(self._energies) > 1:
            self._energies = [np.concatenate(self._energies)]
            self._lengths = [np.concatenate(self._lengths)]
        if not self._energies:
            return np.zeros(0, dtype=np.float64), np.zeros(0, dtype=np.int64)
        return self._energies[0], self._lengths[0]

    def momentary(self) -> NDArray[np.float64]:
        """Momentary loudness (LUFS, 400 ms windows) every 100 ms."""
        return _to_lufs(_window_powers(*self._steps(), MOMENTARY_STEPS))

    def short_term(self) -> NDArray[np.float64]:
        """Short-term loudness (LUFS, 3 s windows) every 100 ms."""
        return _to_lufs(_window_powers(*self._steps(), SHORT_TERM_STEPS))

    def block_powers(self) -> NDArray[np.float64]:
        """Mean weighted power of every 400 ms gating block (100 ms hop): what integrated
        loudness gates. Blocks of several streams pooled and gated together give their
        loudness as one programme (an album), exactly."""
        return _window_powers(*self._steps(), MOMENTARY_STEPS)

    @property
    def gating_blocks(self) -> int:
        """Complete 400 ms gating blocks seen so far: none means nothing could be measured."""
        return int(_window_powers(*self._steps(), MOMENTARY_STEPS).size)

    def integrated(self) -> float:
        """Integrated loudness in LUFS; -inf when no block passes the gates (silence, < 400 ms)."""
        gated = _gated(_window_powers(*self._steps(), MOMENTARY_STEPS), RELATIVE_GATE_LU)
        return _lufs(float(gated.mean())) if gated.size else -math.inf

    def momentary_max(self) -> float:
        """Highest momentary loudness (LUFS); -inf for silence or less than 400 ms."""
        values = self.momentary()
        return float(values.max()) if values.size else -math.inf

    def short_term_max(self) -> float:
        """Highest short-term loudness (LUFS); -inf for silence or less than 3 s."""
        values = self.short_term()
        return float(values.max()) if values.size else -math.inf

    def loudness_range(self) -> float:
        """Loudness range (LU, EBU Tech 3342); NaN when no 3 s window passes the gates
        (silence, shorter than 3 s)."""
        powers = _window_powers(*self._steps(), SHORT_TERM_STEPS)
        gated = _gated(powers, LRA_RELATIVE_GATE_LU)
        if gated.size == 0:
            return math.nan
        low, high = np.percentile(_to_lufs(gated), [LRA_LOW_PERCENTILE, LRA_HIGH_PERCENTILE])
        return float(high - low)


NON_FINITE = "cannot measure a level: the signal holds NaN or infinite samples"


def _require_finite(x: NDArray[np.floating]) -> None:
    """A level of a signal holding NaN or infinity means nothing: NaN compares false, so a
    running max skips it and an all-NaN stream would read as digital silence."""
    if x.size and not np.isfinite(x).all():
        raise ValueError(NON_FINITE)


def peak_db(x: NDArray[np.floating]) -> float:
    """Sample peak in dBFS over all channels: 20 log10(max |x|); -inf for silence or no samples;
    ValueError if a sample is NaN or infinite."""
    if x.size == 0:
        return -math.inf
    _require_finite(x)
    peak = float(np.max(np.abs(x)))
    return 20.0 * math.log10(peak) if peak > 0.0 else -math.inf


def rms_db(x: NDArray[np.floating]) -> float:
    """RMS level in dBFS over all channels and samples: 10 log10(mean(x^2)); -inf for silence;
    ValueError if a sample is NaN or infinite."""
    if x.size == 0:
        return -math.inf
    _require_finite(x)
    power = float(np.mean(np.square(x, dtype=np.float64)))
    return 10.0 * math.log10(power) if power > 0.0 else -math.inf


class LevelMeter:
    """Streaming sample peak, RMS and clip count (|x| >= clip_level) over all channels, and
    each channel's mean (its DC offset).

    A NaN or infinite sample raises ValueError in `add` instead of being skipped (callers check
    their input first: `jobs.probe.check_block` says where the bad sample is).
    """

    def __init__(self, clip_level: float = 1.0) -> None:
        self.clip_level = clip_level
        self._peak = 0.0
        self._sum_squares = 0.0
        self._samples = 0
        self._channel_sums: NDArray[np.float64] = np.zeros(0, dtype=np.float64)
        self.clipped_samples = 0

    def add(self, block: NDArray[np.floating]) -> None:
        """Feed (channels, n) samples."""
        if block.size == 0:
            return
        _require_finite(block)
        mag = np.abs(block)
        self._peak = max(self._peak, float(mag.max()))
        self._sum_squares += float(np.sum(np.square(block, dtype=np.float64)))
        self._samples += block.size
        self.clipped_samples += int(np.count_nonzero(mag >= self.clip_level))
        sums = np.sum(block, axis=-1, dtype=np.float64).reshape(-1)
        if self._channel_sums.size != sums.size:
            self._channel_sums = np.zeros(sums.size, dtype=np.float64)
        self._channel_sums += sums

    def dc_offset(self) -> float:
        """The largest |mean| of a channel, as a fraction of full scale (0.01 is 1 %)."""
        if self._samples == 0 or self._channel_sums.size == 0:
            return 0.0
        frames = self._samples // self._channel_sums.size
        return float(np.max(np.abs(self._channel_sums))) / frames

    def peak_db(self) -> float:
        return 20.0 * math.log10(self._peak) if self._peak > 0.0 else -math.inf

    def rms_db(self) -> float:
        if self._samples == 0 or self._sum_squares == 0.0:
            return -math.inf
        return 10.0 * math.log10(self._sum_squares / self._samples)

    def merge(self, other: LevelMeter) -> None:
        """Add what `other` measured (another part of the same stream)."""
        self._peak = max(self._peak, other._peak)
        self._sum_squares += other._sum_squares
        self._samples += other._samples
        self.clipped_samples += other.clipped_samples
        if self._channel_sums.size == 0:
            self._channel_sums = other._channel_sums.copy()
        elif other._channel_sums.size:
            self._channel_sums = self._channel_sums + other._channel_sums

    @property
    def clipped(self) -> bool:
        return self.clipped_samples > 0
