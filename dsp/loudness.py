"""Level measurement: ITU-R BS.1770-4 integrated loudness, sample peak, RMS, clipping."""

import math

import numpy as np
from numpy.typing import NDArray

from dsp.filters import biquad_cascade

ABSOLUTE_GATE_LUFS = -70.0
RELATIVE_GATE_LU = -10.0


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


class LoudnessMeter:
    """Streaming integrated loudness (BS.1770-4).

    Blocks of any size go in through ``add``; the signal is K-weighted, squared and summed per
    100 ms step; each 400 ms gating block (75 % overlap) is four consecutive steps. Only one
    weighted power per gating block is kept (10 floats per second of audio). Integrated loudness
    = -0.691 + 10 log10(mean weighted power of the blocks above both the absolute gate (-70 LUFS)
    and the relative gate (10 LU below the loudness of the blocks above the absolute gate)).
    A trailing partial 400 ms block is ignored, as the standard specifies.
    """

    def __init__(self, sample_rate: int, channels: int) -> None:
        self.sample_rate = int(sample_rate)
        self.channels = int(channels)
        self._sos = k_weighting_sos(self.sample_rate)
        self._state = np.zeros((self.channels, 2, 2), dtype=np.float64)
        self._weights = channel_weights(self.channels)
        self._step_index = 0
        self._step_filled = 0
        self._step_sum = np.zeros(self.channels, dtype=np.float64)
        self._steps: list[NDArray[np.float64]] = []
        self._step_lengths: list[int] = []
        self._blocks: list[float] = []

    def _step_length(self, index: int) -> int:
        """Frames in 100 ms step ``index``; boundaries at floor(k * rate / 10), exact over time."""
        return (index + 1) * self.sample_rate // 10 - index * self.sample_rate // 10

    def add(self, block: NDArray[np.float32] | NDArray[np.float64]) -> None:
        """Feed (channels, n) samples; ValueError for a NaN or infinite one (see `LevelMeter`)."""
        if block.shape[0] != self.channels:
            raise ValueError(f"expected {self.channels} channels, got {block.shape[0]}")
        _require_finite(block)
        weighted = biquad_cascade(
            np.ascontiguousarray(block, dtype=np.float64), self._sos, self._state
        )
        squared = weighted * weighted
        pos = 0
        n = squared.shape[1]
        while pos < n:
            length = self._step_length(self._step_index)
            take = min(length - self._step_filled, n - pos)
            self._step_sum += squared[:, pos : pos + take].sum(axis=1)
            self._step_filled += take
            pos += take
            if self._step_filled == length:
                self._close_step(length)

    def _close_step(self, length: int) -> None:
        self._steps.append(self._step_sum.copy())
        self._step_lengths.append(length)
        self._step_sum[:] = 0.0
        self._step_filled = 0
        self._step_index += 1
        if len(self._steps) == 4:
            sums = self._steps[0] + self._steps[1] + self._steps[2] + self._steps[3]
            frames = sum(self._step_lengths)
            self._blocks.append(float(np.dot(self._weights, sums / frames)))
            self._steps.pop(0)
            self._step_lengths.pop(0)

    def integrated(self) -> float:
        """Integrated loudness in LUFS; -inf when no block passes the gates (silence, < 400 ms)."""
        if not self._blocks:
            return -math.inf
        powers = np.array(self._blocks)
        above = powers[powers > 10.0 ** ((ABSOLUTE_GATE_LUFS + 0.691) / 10.0)]
        if above.size == 0:
            return -math.inf
        relative = _lufs(float(above.mean())) + RELATIVE_GATE_LU
        gated = above[above > 10.0 ** ((relative + 0.691) / 10.0)]
        if gated.size == 0:
            return -math.inf
        return _lufs(float(gated.mean()))


def _require_finite(x: NDArray[np.floating]) -> None:
    """A level of a signal holding NaN or infinity means nothing: NaN compares false, so a
    running max skips it and an all-NaN stream would read as digital silence."""
    if x.size and not np.isfinite(x).all():
        raise ValueError("cannot measure a level: the signal holds NaN or infinite samples")


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
    """Streaming sample peak, RMS and clip count (|x| >= clip_level) over all channels.

    A NaN or infinite sample raises ValueError in `add` instead of being skipped (callers check
    their input first: `jobs.probe.check_block` says where the bad sample is).
    """

    def __init__(self, clip_level: float = 1.0) -> None:
        self.clip_level = clip_level
        self._peak = 0.0
        self._sum_squares = 0.0
        self._samples = 0
        self.clipped_samples = 0

    def add(self, block: NDArray[np.floating]) -> None:
        if block.size == 0:
            return
        _require_finite(block)
        mag = np.abs(block)
        self._peak = max(self._peak, float(mag.max()))
        self._sum_squares += float(np.sum(np.square(block, dtype=np.float64)))
        self._samples += block.size
        self.clipped_samples += int(np.count_nonzero(mag >= self.clip_level))

    def peak_db(self) -> float:
        return 20.0 * math.log10(self._peak) if self._peak > 0.0 else -math.inf

    def rms_db(self) -> float:
        if self._samples == 0 or self._sum_squares == 0.0:
            return -math.inf
        return 10.0 * math.log10(self._sum_squares / self._samples)

    @property
    def clipped(self) -> bool:
        return self.clipped_samples > 0
