"""True peak (ITU-R BS.1770-4 Annex 2): polyphase oversampling meter and a true-peak limiter."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from dsp.jit import kernel
from dsp.latency import Lookahead

OVERSAMPLED_RATE = 192_000
TAPS_PER_PHASE = 32
KAISER_BETA = 9.0
SCREEN_CHUNK = 32
"""Frames screened together; must exceed taps - 1."""


def oversampling_factor(sample_rate: int) -> int:
    """Phases needed to reach at least 192 kHz: 4 at 48 kHz, 5 at 44.1 kHz, 2 at 96 kHz."""
    return max(1, math.ceil(OVERSAMPLED_RATE / sample_rate - 1e-9))


def interpolator(factor: int, taps_per_phase: int = TAPS_PER_PHASE) -> NDArray[np.float64]:
    """Kaiser-windowed sinc interpolator as (factor, taps) polyphase rows: phase p of the
    oversampled stream at input frame j is sum_k phases[p, k] x[j - k].

    The centre sits on an input sample (taps_per_phase is even), so phase 0 reproduces the
    input exactly, delayed by taps_per_phase / 2 frames; the other phases lie between samples.
    """
    n = factor * taps_per_phase
    centre = n // 2
    k = np.arange(n, dtype=np.float64)
    h = np.sinc((k - centre) / factor) * np.kaiser(n + 1, KAISER_BETA)[:n]
    phases = np.ascontiguousarray(h.reshape(taps_per_phase, factor).T)
    return phases


@kernel
def phase_bounds(phases: NDArray[np.float64]) -> tuple[float, float]:
    """(central, tail): max over phases of sum |h| over the 4 taps around the interpolated
    interval, and over the other taps. No oversampled value at frame j exceeds central * (max
    |x| of those 4 frames) + tail * (max |x| of the whole window): frames under the level
    that matters skip the interpolation, exactly."""
    factor, taps = phases.shape
    half = taps // 2
    central = 0.0
    tail = 0.0
    for p in range(factor):
        c = 0.0
        t = 0.0
        for k in range(taps):
            if half - 2 <= k <= half + 1:
                c += abs(phases[p, k])
            else:
                t += abs(phases[p, k])
        central = max(central, c)
        tail = max(tail, t)
    return central, tail


@kernel
def span_peaks(
    ext: NDArray[np.float64],
    phases: NDArray[np.float64],
    first: int,
    out: NDArray[np.float64],
    acc: NDArray[np.float64],
) -> None:
    """out[i] = largest |oversampled value| (phases >= 1) in the interval of frame first + i
    of ``ext`` (between ext[first + i - T/2] and the next frame).

    Summed tap-outer over the span, so the inner loop runs across frames and vectorises, and
    every value is still summed in tap order (same bits for any block size).
    """
    factor, taps = phases.shape
    m = out.shape[0]
    for i in range(m):
        out[i] = 0.0
    for p in range(1, factor):
        for i in range(m):
            acc[i] = 0.0
        for k in range(taps):
            h = phases[p, k]
            source = ext[first - k : first - k + m]
            for i in range(m):
                acc[i] += h * source[i]
        for i in range(m):
            a = abs(acc[i])
            out[i] = a if a > out[i] else out[i]


@kernel
def screened_peaks(
    ext: NDArray[np.float64],
    phases: NDArray[np.float64],
    threshold: float,
    running: bool,
    detect: NDArray[np.float64],
) -> float:
    """Raise detect[i] to the oversampled peak at frame keep + i of ``ext`` wherever it may
    exceed ``threshold`` (raised along the way to each sample and oversampled peak found when
    ``running``); returns the final threshold. Chunks whose bound (``phase_bounds``) stays
    under it are skipped, and within the others the span of frames that may reach it is
    interpolated (``span_peaks``). Slices keep indices non-negative, so numba drops its
    wraparound checks and the loops vectorise."""
    taps = phases.shape[1]
    keep = taps - 1
    half = taps // 2
    n = ext.shape[0] - keep
    central, tail = phase_bounds(phases)
    out = np.empty(SCREEN_CHUNK, dtype=np.float64)
    acc = np.empty(SCREEN_CHUNK, dtype=np.float64)
    chunks = (n + SCREEN_CHUNK - 1) // SCREEN_CHUNK
    # tops[q] = max |ext| over the chunk's frames and the keep frames before them (chunks are
    # longer than keep, so the previous chunk's own max covers those).
    own = np.empty(chunks + 1, dtype=np.float64)
    own[0] = 0.0
    for i in range(keep):
        own[0] = max(own[0], abs(ext[i]))
    for q in range(chunks):
        segment = ext[keep + q * SCREEN_CHUNK : min(keep + (q + 1) * SCREEN_CHUNK, keep + n)]
        t0 = t1 = t2 = t3 = 0.0  # four running maxima: independent chains
        whole = segment.shape[0] // 4 * 4
        for i in range(0, whole, 4):
            t0 = max(t0, abs(segment[i]))
            t1 = max(t1, abs(segment[i + 1]))
            t2 = max(t2, abs(segment[i + 2]))
            t3 = max(t3, abs(segment[i + 3]))
        for i in range(whole, segment.shape[0]):
            t0 = max(t0, abs(segment[i]))
        top = max(max(t0, t1), max(t2, t3))
        own[q + 1] = top
        if running and top > threshold:
            threshold = top
    for q in range(chunks):
        window = max(own[q], own[q + 1])
        if (central + tail) * window <= threshold:
            continue
        floor = tail * window
        low = keep + q * SCREEN_CHUNK
        high = min(low + SCREEN_CHUNK, keep + n)
        first, last = high, low - 1
        around = ext[low - half - 1 : high - half + 2]
        for i in range(high - low):
            near = max(
                max(abs(around[i]), abs(around[i + 1])),
                max(abs(around[i + 2]), abs(around[i + 3])),
            )
            if central * near + floor > threshold:
                first = min(first, low + i)
                last = low + i
        if last < first:
            continue
        span = out[: last - first + 1]
        span_peaks(ext, phases, first, span, acc)
        for i in range(span.shape[0]):
            if span[i] > detect[first - keep + i]:
                detect[first - keep + i] = span[i]
            if running and span[i] > threshold:
                threshold = span[i]
    return threshold


@kernel
def true_peak_kernel(
    x: NDArray[np.floating],
    phases: NDArray[np.float64],
    history: NDArray[np.float64],
    peaks: NDArray[np.float64],
) -> None:
    """Raise ``peaks[c]`` to the highest |sample| and |oversampled value| of channel c.

    Exact: the interpolation is skipped only where it cannot reach the running peak.
    ``history`` holds the last taps - 1 input frames per channel (float64), so blocks chain
    seamlessly.
    """
    channels, n = x.shape
    keep = phases.shape[1] - 1
    ext = np.empty(keep + n, dtype=np.float64)
    detect = np.zeros(n, dtype=np.float64)
    for c in range(channels):
        for i in range(keep):
            ext[i] = history[c, i]
        body = ext[keep:]
        row = x[c]
        for i in range(n):
            body[i] = row[i]
        peaks[c] = screened_peaks(ext, phases, peaks[c], True, detect)
        for i in range(keep):
            history[c, i] = ext[n + i]


class TruePeakMeter:
    """Streaming true peak over all channels (BS.1770-4 Annex 2, >= 192 kHz equivalent).

    >>> meter = TruePeakMeter(48_000, 2)
    >>> meter.add(np.zeros((2, 480), np.float32)); meter.true_peak_db()
    -inf
    """

    def __init__(self, sample_rate: int, channels: int) -> None:
        self.phases = interpolator(oversampling_factor(sample_rate))
        self._history = np.zeros((channels, self.phases.shape[1] - 1), dtype=np.float64)
        self._peaks = np.zeros(channels, dtype=np.float64)

    def add(self, block: NDArray[np.float32] | NDArray[np.float64]) -> None:
        true_peak_kernel(np.ascontiguousarray(block), self.phases, self._history, self._peaks)

    def warm(self, block: NDArray[np.float32] | NDArray[np.float64]) -> None:
        """Take `block` (the frames just before a segment) as history only: the segment's
        oversampled values are then those of the unsplit stream; its peaks merge by max."""
        ignored = np.zeros_like(self._peaks)
        true_peak_kernel(np.ascontiguousarray(block), self.phases, self._history, ignored)

    def merge(self, other: TruePeakMeter) -> None:
        self._peaks = np.maximum(self._peaks, other._peaks)

    def merge_reset(self) -> None:
        """Forget the peaks measured so far, keeping the history (after a warm-up)."""
        self._peaks[:] = 0.0

    def true_peak(self) -> float:
        """Linear true peak of the loudest channel."""
        return float(self._peaks.max()) if self._peaks.size else 0.0

    def true_peak_db(self) -> float:
        """True peak in dBTP; -inf for digital silence."""
        peak = self.true_peak()
        return 20.0 * math.log10(peak) if peak > 0.0 else -math.inf


@kernel
def true_peak_limiter_kernel(
    x: NDArray[np.float32],
    gain: float,
    ceiling: float,
    release: float,
    phases: NDArray[np.float64],
    history: NDArray[np.float64],
    delay: NDArray[np.float64],
    mins: NDArray[np.float64],
    min_index: NDArray[np.int64],
    box: NDArray[np.float64],
    state: NDArray[np.float64],
    counters: NDArray[np.int64],
) -> NDArray[np.float32]:
    """Static gain, then a lookahead limiter driven by the oversampled (true) peak.

    At frame j the F phases of the gained input span the interval between frames j - T/2 and
    j - T/2 + 1 (T taps per phase); d[j] is their largest magnitude and r[j] = min(1,
    ceiling / d[j]). h[j] = min(r[j - L - 1 .. j]) covers both intervals around the frame that
    leaves the delay line, g[j] = mean(h[j - L .. j]) ramps the reduction in over the L frames
    of lookahead, and the release smoother may only lower it at once: s = g if g < s else
    release s + (1 - release) g. Output y[j] = gain x[j - L - T/2] s[j], clamped to the ceiling.
    Frames that cannot reach the ceiling (``phase_bounds``) skip the interpolation.
    ``history`` holds the last T - 1 gained frames; the window of ``mins`` is L + 2 long, the
    box and delay hold L + 1 and L + T/2 values; state = [box sum, s]; counters = [time,
    deque head, deque tail].
    """
    channels, n = x.shape
    taps = phases.shape[1]
    keep = taps - 1
    size = mins.shape[0]
    box_size = box.shape[0]
    lag = delay.shape[1]
    detect = np.zeros(n, dtype=np.float64)
    ext = np.empty(keep + n, dtype=np.float64)
    for c in range(channels):
        for i in range(keep):
            ext[i] = history[c, i]
        for i in range(n):
            v = np.float64(x[c, i]) * gain
            ext[keep + i] = v
            detect[i] = max(detect[i], abs(v))
        screened_peaks(ext, phases, ceiling, False, detect)
        for i in range(keep):
            history[c, i] = ext[n + i]
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
        d = detect[i]
        r = ceiling / d if d > ceiling else 1.0
        while tail > head and mins[(tail - 1) % size] >= r:
            tail -= 1
        mins[tail % size] = r
        min_index[tail % size] = t
        tail += 1
        while min_index[head % size] <= t - size:
            head += 1
        h = mins[head % size]
        slot = t % box_size
        total += h - box[slot]
        box[slot] = h
        g = total / box_size
        smooth = g if g < smooth else release * smooth + (1.0 - release) * g
        for c in range(channels):
            current = np.float64(x[c, i]) * gain
            delayed = delay[c, t % lag]
            delay[c, t % lag] = current
            out = np.float32(delayed * smooth)
            if out > limit:
                out = limit
            elif out < -limit:
                out = -limit
            y[c, i] = out
        t += 1
    state[0] = total
    state[1] = smooth
    counters[0] = t
    counters[1] = head
    counters[2] = tail
    return y


class TruePeakLimiter(Lookahead):
    """Static gain followed by a lookahead limiter that holds the oversampled peak under
    ``ceiling_db`` (dBTP). Latency is compensated: output aligns with input, same length.

    The gain is smoothed (linear ramp over the lookahead, one-pole release), so a light touch on
    rare peaks leaves the loudness where the static gain put it.

    >>> lim = TruePeakLimiter(gain_db=6.0, ceiling_db=-1.0)
    >>> lim.configure(48_000, 2)
    (48000, 2)
    """

    def __init__(
        self,
        gain_db: float,
        ceiling_db: float,
        lookahead_ms: float = 2.0,
        release_ms: float = 50.0,
    ) -> None:
        if not (math.isfinite(ceiling_db) and ceiling_db <= 0.0):
            raise ValueError(f"true-peak ceiling must be <= 0 dBTP, got {ceiling_db}")
        if not math.isfinite(gain_db):
            raise ValueError(f"gain must be finite, got {gain_db}")
        self.gain_db = float(gain_db)
        self.ceiling_db = float(ceiling_db)
        self.lookahead_ms = float(lookahead_ms)
        self.release_ms = float(release_ms)
        self.configure(48_000, 1)

    def configure(self, sample_rate: int, channels: int) -> tuple[int, int]:
        self.phases = interpolator(oversampling_factor(sample_rate))
        taps = self.phases.shape[1]
        lookahead = max(1, round(self.lookahead_ms * sample_rate / 1000.0))
        self._lag = lookahead + taps // 2
        self._release = (
            math.exp(-1.0 / (self.release_ms * 1e-3 * sample_rate)) if self.release_ms else 0.0
        )
        self._history = np.zeros((channels, taps - 1), dtype=np.float64)
        self._delay = np.zeros((channels, self._lag), dtype=np.float64)
        self._mins = np.ones(lookahead + 2, dtype=np.float64)
        self._min_index = np.full(lookahead + 2, -(2**62), dtype=np.int64)
        self._box = np.ones(lookahead + 1, dtype=np.float64)
        self._state = np.array([float(lookahead + 1), 1.0], dtype=np.float64)
        self._counters = np.zeros(3, dtype=np.int64)
        self._start_latency(channels, self._lag)
        return sample_rate, channels

    def _render(self, block: NDArray[np.float32]) -> NDArray[np.float32]:
        y: NDArray[np.float32] = true_peak_limiter_kernel(
            np.ascontiguousarray(block, dtype=np.float32),
            10.0 ** (self.gain_db / 20.0),
            10.0 ** (self.ceiling_db / 20.0),
            self._release,
            self.phases,
            self._history,
            self._delay,
            self._mins,
            self._min_index,
            self._box,
            self._state,
            self._counters,
        )
        return y
