"""Speech noise reduction: a short-time spectral, decision-directed Wiener estimator.

Frames of about 40 ms (a power of two, hop half of it, square-root Hann windows) go through an
STFT. Each bin gets a Wiener gain from a decision-directed a priori SNR (Ephraim & Malah 1984),
refined by the two-step rule of Plapous, Marro & Scalart (2006), against a noise power that is
either tracked continuously (the speech presence probability estimator of Gerkmann & Hendriks
2012, which follows hiss and hum alike) or learned once from a noise-only range. Where speech is
present the tracker holds still; instead of Gerkmann & Hendriks' escape from a noise that rose
(capping the presence at 0.99, which lets every loud frame lift the estimate by 1 % of its
power, so under loud speech the estimate creeps up into the speech and the gain bites it: clean
input came out at 38 dB SI-SDR), a bin whose smoothed power stays above the estimate and steady
within 8 dB for 2 s is taken for a louder noise, not speech, and the estimate jumps to the
least of that run. With an exact noise estimate, gain reaches 1 as the SNR grows. The a priori
SNR is smoothed over time (alpha 0.96 per 20 ms hop, a time constant of about half a second)
and over neighbouring bins, and the gain is floored at ``-reduction_db``: the residual noise
stays a steady, quieter copy of the noise instead of "musical" tones. Channels share one gain
(computed from their mean power) so the stereo image stays put.
"""

import math

import numpy as np
from numpy.typing import NDArray

from dsp.jit import kernel

_TABLE_SIZE = 4096
_SPP_HIGH = 40.0
_DD_ALPHA = 0.96
_XI_MIN_DB = -25.0
_XI_H1_DB = 10.0
_INIT_FRAMES = 10
_FRAME_S = 0.03
_NOISE_SMOOTH = 0.95  # Gerkmann & Hendriks use 0.8 at 16 ms hops; steadier here
_RUN_SMOOTH_S = 0.1  # time constant of the power smoothed to tell a steady noise...
_RUN_ABOVE = 4.0  # a run is power more than 6 dB above the noise estimate...
_RUN_SPREAD = 6.3  # ...that stays within 8 dB (speech swings wider within a second)...
_RUN_S = 2.0  # ...for this long (the longest such run in the test speech is about 1.2 s)


@kernel
def presence_table(size: int, high: float) -> NDArray[np.float64]:
    """P(speech | gamma) = 1 / (1 + (1 + xi_H1) exp(-gamma xi_H1 / (1 + xi_H1))) on a grid of
    gamma xi_H1 / (1 + xi_H1) from 0 to high, for `denoise_gains`."""
    xi_h1 = 10.0 ** (_XI_H1_DB / 10.0)
    table = np.empty(size, dtype=np.float64)
    for i in range(size):
        table[i] = 1.0 / (1.0 + (1.0 + xi_h1) * math.exp(-high * i / (size - 1)))
    return table


@kernel
def _lookup(table: NDArray[np.float64], pos: float) -> float:
    """Linear interpolation in `table` at fractional index `pos`, clamped to its ends."""
    last = table.shape[0] - 1
    if pos <= 0.0:
        return float(table[0])
    if pos >= last:
        return float(table[last])
    i = int(pos)
    t = pos - i
    return float(table[i] + t * (table[i + 1] - table[i]))


@kernel
def denoise_gains(
    power: NDArray[np.float64],
    noise: NDArray[np.float64],
    prior: NDArray[np.float64],
    run: NDArray[np.float64],
    meta: NDArray[np.float64],
    spp: NDArray[np.float64],
    floor_gain: float,
    sensitivity: float,
    track: bool,
    run_frames: float,
    run_smooth: float,
) -> NDArray[np.float64]:
    """Gains (frames, bins) for the power spectra `power` (frames, bins), frame after frame.

    State carried between calls: `noise` (noise power per bin), `prior` (|S_prev|^2 / noise, the
    decision-directed memory), `run` (4, bins: smoothed power, the least and the most of it in
    the current run, the run's length in frames) and `meta[0]` (frames seen). With `track`
    false the noise power is never changed.
    Noise tracking (Gerkmann & Hendriks): P = 1 / (1 + (1 + xi_H1) exp(-gamma xi_H1/(1+xi_H1))),
    E|N|^2 = (1 - P)|Y|^2 + P sigma^2, sigma^2 <- 0.95 sigma^2 + 0.05 E|N|^2; the first frames
    start it from their mean power. A run: smoothed power S <- b S + (1 - b) |Y|^2 (b is
    `run_smooth`) above 4 sigma^2 with max/min of S over the run at most 6.3; once it lasts
    `run_frames`, sigma^2 <- max(sigma^2, min S) and the run starts over.
    Gain: xi = a G_prev^2 gamma_prev + (1 - a) max(gamma - 1, 0) smoothed over 3 bins,
    G1 = xi / (1 + xi), xi2 = G1^2 gamma, G = xi2 / (1 + xi2), then max(G, floor).
    `spp` is `presence_table(_TABLE_SIZE, _SPP_HIGH)`.
    """
    frames, bins = power.shape
    gains = np.empty((frames, bins), dtype=np.float64)
    xi_min = 10.0 ** (_XI_MIN_DB / 10.0)
    xi_h1 = 10.0 ** (_XI_H1_DB / 10.0)
    h1_ratio = xi_h1 / (1.0 + xi_h1)
    spp_step = (spp.shape[0] - 1) / _SPP_HIGH
    xi = np.empty(bins, dtype=np.float64)
    gamma = np.empty(bins, dtype=np.float64)
    smooth, least, most, length = run[0], run[1], run[2], run[3]
    for f in range(frames):
        seen = meta[0]
        if track:
            if seen < _INIT_FRAMES:
                for k in range(bins):
                    noise[k] = (noise[k] * seen + power[f, k]) / (seen + 1.0)
            else:
                for k in range(bins):
                    ratio = power[f, k] / max(noise[k], 1e-30)
                    p = _lookup(spp, ratio * h1_ratio * spp_step)
                    expected = (1.0 - p) * power[f, k] + p * noise[k]
                    noise[k] = _NOISE_SMOOTH * noise[k] + (1.0 - _NOISE_SMOOTH) * expected
                    s = run_smooth * smooth[k] + (1.0 - run_smooth) * power[f, k]
                    smooth[k] = s
                    if s <= _RUN_ABOVE * noise[k]:
                        length[k] = 0.0
                    elif length[k] > 0.0 and max(most[k], s) <= _RUN_SPREAD * min(least[k], s):
                        least[k] = min(least[k], s)
                        most[k] = max(most[k], s)
                        length[k] += 1.0
                    else:
                        least[k] = s
                        most[k] = s
                        length[k] = 1.0
                    if length[k] >= run_frames:
                        noise[k] = max(noise[k], least[k])
                        length[k] = 0.0
        meta[0] = seen + 1.0
        for k in range(bins):
            gamma[k] = min(power[f, k] / max(sensitivity * noise[k], 1e-30), 1e6)
            ml = max(gamma[k] - 1.0, 0.0)
            xi[k] = _DD_ALPHA * prior[k] + (1.0 - _DD_ALPHA) * ml if seen > 0 else ml
        for k in range(bins):
            lo = xi[k - 1] if k > 0 else xi[k]
            hi = xi[k + 1] if k + 1 < bins else xi[k]
            s = max(0.25 * lo + 0.5 * xi[k] + 0.25 * hi, xi_min)
            # Decision-directed Wiener gain, then its two-step refinement (Plapous et al. 2006):
            # the first gain's own SNR estimate, without the decision-directed frame of delay.
            first = s / (1.0 + s)
            refined = max(first * first * gamma[k], xi_min)
            g = refined / (1.0 + refined)
            prior[k] = g * g * gamma[k]
            gains[f, k] = max(g, floor_gain)
    return gains


@kernel
def overlap_add(
    frames: NDArray[np.float64], carry: NDArray[np.float64], hop: int
) -> NDArray[np.float64]:
    """Sum (channels, count, size) frames `hop` apart onto `carry` (channels, size - hop);
    returns the count * hop finished samples and leaves the unfinished tail in `carry`."""
    channels, count, size = frames.shape
    out = np.zeros((channels, count * hop + size - hop), dtype=np.float64)
    for c in range(channels):
        for i in range(size - hop):
            out[c, i] += carry[c, i]
        for f in range(count):
            base = f * hop
            for i in range(size):
                out[c, base + i] += frames[c, f, i]
        for i in range(size - hop):
            carry[c, i] = out[c, count * hop + i]
    return out[:, : count * hop]


class ProfileOutsideSignal(ValueError):
    """The profile range holds no full frame of the signal reaching the effect (it lies past
    the end of a signal that earlier steps of the chain shortened)."""


def frame_size(sample_rate: int) -> int:
    """The STFT length: the power of two at or above 30 ms (1024 at 22.05 kHz, 2048 at 48 kHz)."""
    return 1 << max(6, math.ceil(math.log2(_FRAME_S * sample_rate)))


class Denoise:
    """Streaming spectral noise reduction; output aligned with the input, same length.

    The STFT needs `size - hop` samples of lookahead, so that many samples are held back and
    released by flush(); memory is a few frames whatever the stream length. With `profile`
    ((start_s, end_s) of the signal reaching this effect) the noise spectrum is the mean
    power of the frames inside that range, learned in an analysis pass, and is not tracked.
    """

    def __init__(
        self,
        reduction_db: float = 12.0,
        sensitivity: float = 1.0,
        profile: tuple[float, float] | None = None,
    ) -> None:
        if not 0.0 <= reduction_db <= 120.0:
            raise ValueError(f"denoise reduction_db must be in 0..120, got {reduction_db}")
        if not sensitivity > 0.0:
            raise ValueError(f"denoise sensitivity must be > 0, got {sensitivity}")
        if profile is not None and not 0.0 <= profile[0] < profile[1]:
            raise ValueError(f"denoise profile must have 0 <= start < end, got {profile}")
        self.reduction_db = float(reduction_db)
        self.sensitivity = float(sensitivity)
        self.profile = profile
        self.needs_analysis = profile is not None
        self._spp = presence_table(_TABLE_SIZE, _SPP_HIGH)
        self._learned: NDArray[np.float64] | None = None
        self._setup(48000, 1)

    def _setup(self, sample_rate: int, channels: int) -> None:
        self._rate = sample_rate
        self._channels = channels
        self._size = frame_size(sample_rate)
        self._hop = self._size // 2
        n = np.arange(self._size, dtype=np.float64)
        hann = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / self._size)
        self._window = np.sqrt(hann)
        # Square-root periodic Hann twice, half a frame apart, sums to exactly 1.
        self._synthesis = np.sqrt(hann)
        bins = self._size // 2 + 1
        self._noise = np.zeros(bins, dtype=np.float64)
        if self._learned is not None:
            self._noise[:] = self._learned
        self._prior = np.zeros(bins, dtype=np.float64)
        self._run = np.zeros((4, bins), dtype=np.float64)
        self._meta = np.zeros(1, dtype=np.float64)
        self._pending = np.zeros((channels, self._size - self._hop), dtype=np.float64)
        self._carry = np.zeros((channels, self._size - self._hop), dtype=np.float64)
        self._skip = self._size - self._hop
        self._taken = 0
        self._given = 0

    def configure(self, sample_rate: int, channels: int) -> tuple[int, int]:
        self._setup(sample_rate, channels)
        return sample_rate, channels

    def _frames(self, block: NDArray[np.float64]) -> NDArray[np.float64]:
        """Append `block` and return every finished output sample (before trimming)."""
        data = np.concatenate([self._pending, block], axis=1)
        count = (data.shape[1] - self._size) // self._hop + 1 if data.shape[1] >= self._size else 0
        if count <= 0:
            self._pending = data
            return np.zeros((self._channels, 0), dtype=np.float64)
        view = np.lib.stride_tricks.sliding_window_view(data, self._size, axis=1)
        frames = view[:, : count * self._hop : self._hop, :] * self._window
        spectra = np.fft.rfft(frames, axis=2)
        power = np.ascontiguousarray(
            np.mean(spectra.real**2 + spectra.imag**2, axis=0), dtype=np.float64
        )
        gains = denoise_gains(
            power,
            self._noise,
            self._prior,
            self._run,
            self._meta,
            self._spp,
            10.0 ** (-self.reduction_db / 20.0),
            self.sensitivity,
            self._learned is None,
            _RUN_S * self._rate / self._hop,
            math.exp(-self._hop / (_RUN_SMOOTH_S * self._rate)),
        )
        cleaned = np.fft.irfft(spectra * gains[np.newaxis], n=self._size, axis=2)
        cleaned = np.ascontiguousarray(cleaned * self._synthesis)
        self._pending = np.ascontiguousarray(data[:, count * self._hop :])
        out: NDArray[np.float64] = overlap_add(cleaned, self._carry, self._hop)
        return out

    def _emit(self, done: NDArray[np.float64], limit: int | None) -> NDArray[np.float32]:
        skip = min(self._skip, done.shape[1])
        self._skip -= skip
        done = done[:, skip:]
        if limit is not None:
            done = done[:, : max(limit - self._given, 0)]
        self._given += done.shape[1]
        return np.ascontiguousarray(done, dtype=np.float32)

    def process(self, block: NDArray[np.float32]) -> NDArray[np.float32]:
        self._taken += block.shape[1]
        return self._emit(self._frames(block.astype(np.float64)), None)

    def flush(self) -> NDArray[np.float32]:
        tail = np.zeros((self._channels, self._size), dtype=np.float64)
        return self._emit(self._frames(tail), self._taken)

    # Analysis (profile only): the mean power spectrum of the frames inside the profile range.

    def begin_analysis(self, sample_rate: int, channels: int) -> None:
        self._setup(sample_rate, channels)
        assert self.profile is not None
        self._range = (round(self.profile[0] * sample_rate), round(self.profile[1] * sample_rate))
        self._position = 0
        self._sum = np.zeros(self._size // 2 + 1, dtype=np.float64)
        self._count = 0
        self._collect = np.zeros((channels, 0), dtype=np.float64)

    def analyze(self, block: NDArray[np.float32]) -> None:
        first = self._position
        self._position += block.shape[1]
        lo = max(self._range[0] - first, 0)
        hi = min(self._range[1] - first, block.shape[1])
        if lo >= hi:
            return
        data = np.concatenate([self._collect, block[:, lo:hi].astype(np.float64)], axis=1)
        if data.shape[1] < self._size:
            self._collect = data
            return
        count = (data.shape[1] - self._size) // self._hop + 1
        view = np.lib.stride_tricks.sliding_window_view(data, self._size, axis=1)
        spectra = np.fft.rfft(view[:, : count * self._hop : self._hop, :] * self._window, axis=2)
        power = np.mean(spectra.real**2 + spectra.imag**2, axis=0)
        for row in power:  # frame by frame: the same sum whatever the block boundaries
            self._sum += row
        self._count += count
        self._collect = np.ascontiguousarray(data[:, count * self._hop :])

    def finish_analysis(self) -> None:
        if self._count == 0:
            start, end = self.profile if self.profile else (0.0, 0.0)
            raise ProfileOutsideSignal(
                f"denoise.profile {start:g}..{end:g} s holds no full "
                f"{self._size / self._rate * 1000:.0f} ms frame of the signal reaching it, "
                f"{self._position / self._rate:.6g} s long"
            )
        self._learned = self._sum / self._count
