"""Shortening long pauses, with an edit list of what was cut."""

import itertools
import math

import numpy as np
from numpy.typing import NDArray

from dsp.chain import uncut_time
from dsp.jit import kernel

WINDOW_MS = 20.0
"""The level is measured over a window this long centred on each sample (10 ms either side),
so a sample only counts as quiet when its neighbourhood is: word attacks and decays stay."""
CROSSFADE_MS = 10.0
"""Equal-power crossfade across each cut (shorter when keep_ms is shorter)."""


@kernel
def quiet_kernel(
    x: NDArray[np.float32],
    threshold: float,
    ring: NDArray[np.float64],
    state: NDArray[np.float64],
    counters: NDArray[np.int64],
) -> NDArray[np.bool_]:
    """Whether each window of W = ring.size frames ending at the frames of `x` is quiet.

    Power p[n] = mean_c x_c[n]^2; quiet[n] = mean(p[n-W+1..n]) < threshold (frames before the
    stream count as silence). The running sum lives in state[0]; counters[0] is the time n.
    Computed frame by frame in one order, so the answer does not depend on block boundaries.
    """
    channels, n = x.shape
    size = ring.shape[0]
    quiet = np.empty(n, dtype=np.bool_)
    total = state[0]
    t = counters[0]
    limit = threshold * size
    for i in range(n):
        p = 0.0
        for c in range(channels):
            v = np.float64(x[c, i])
            p += v * v
        p /= channels
        slot = t % size
        total += p - ring[slot]
        ring[slot] = p
        if total < 0.0:
            total = 0.0
        quiet[i] = total < limit
        t += 1
    state[0] = total
    counters[0] = t
    return quiet


def equal_power(out: NDArray[np.float32], into: NDArray[np.float32]) -> NDArray[np.float32]:
    """Crossfade from `out` to `into` (same shape) with cos/sin gains (constant power)."""
    count = out.shape[1]
    t = (np.arange(count, dtype=np.float64) + 0.5) / max(count, 1)
    mixed = out * np.cos(0.5 * np.pi * t) + into * np.sin(0.5 * np.pi * t)
    return np.ascontiguousarray(mixed, dtype=np.float32)


class Silence:
    """Shorten every pause longer than min_silence_ms (and than keep_ms) to keep_ms.

    A pause is a run of frames whose centred 20 ms level (mean power over channels) is below
    threshold_db dBFS. Half of keep_ms stays at its start and half at its end; the middle is
    removed with a short equal-power crossfade across the cut. `cuts` lists what was removed as
    (start_s, end_s) of this effect's input, reset by configure(). Memory is bounded by
    max(min_silence_ms, keep_ms) plus the window, whatever the pause length: once a pause is
    long enough to be cut its middle is dropped as it arrives. The output is never empty: when
    a stream is one pause and keep_ms keeps no frame of it (keep_ms=0), its first frame stays
    (FLAC and MP3 cannot hold zero frames, and an empty file is no answer to "shorten the
    pauses").
    """

    def __init__(
        self, threshold_db: float = -50.0, min_silence_ms: float = 1000.0, keep_ms: float = 300.0
    ) -> None:
        if not math.isfinite(threshold_db):
            raise ValueError(f"silence threshold_db must be finite, got {threshold_db}")
        if min_silence_ms < 0.0 or keep_ms < 0.0:
            raise ValueError("silence min_silence_ms and keep_ms must be >= 0")
        self.threshold_db = float(threshold_db)
        self.min_silence_ms = float(min_silence_ms)
        self.keep_ms = float(keep_ms)
        self.cuts: list[tuple[float, float]] = []
        self._setup(48000, 1)

    def _setup(self, sample_rate: int, channels: int) -> None:
        per_ms = sample_rate / 1000.0
        self._rate = sample_rate
        self._channels = channels
        window = max(1, round(WINDOW_MS * per_ms))
        self._lag = window // 2
        self._ring = np.zeros(window, dtype=np.float64)
        self._state = np.zeros(1, dtype=np.float64)
        self._counters = np.zeros(1, dtype=np.int64)
        self._keep = round(self.keep_ms * per_ms)
        self._head = self._keep // 2
        self._fade = min(round(CROSSFADE_MS * per_ms), self._keep)
        self._certain = max(round(self.min_silence_ms * per_ms), self._keep)
        self._undecided = np.zeros((channels, 0), dtype=np.float32)
        self._decided = 0
        self._run_start: int | None = None
        self._run: NDArray[np.float32] = np.zeros((channels, 0), dtype=np.float32)
        self._fade_out: NDArray[np.float32] | None = None
        self._first: NDArray[np.float32] | None = None
        self._given = 0
        self.cuts = []

    def configure(self, sample_rate: int, channels: int) -> tuple[int, int]:
        self._setup(sample_rate, channels)
        return sample_rate, channels

    def input_time(self, t: float) -> float:
        return uncut_time(self.cuts, t)

    def _empty(self) -> NDArray[np.float32]:
        return np.zeros((self._channels, 0), dtype=np.float32)

    def _decide(self, block: NDArray[np.float32]) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
        """Frames whose centred window is now complete, with their quiet flags."""
        quiet = quiet_kernel(
            block,
            10.0 ** (self.threshold_db / 10.0),
            self._ring,
            self._state,
            self._counters,
        )
        data = np.concatenate([self._undecided, block], axis=1)
        # quiet[i] is the window ending at block frame i, centred `lag` frames earlier.
        ready = max(int(self._counters[0]) - self._lag - self._decided, 0)
        flags = quiet[quiet.shape[0] - ready :]
        self._undecided = np.ascontiguousarray(data[:, ready:])
        self._decided += ready
        return np.ascontiguousarray(data[:, :ready]), flags

    def _quiet(self, frames: NDArray[np.float32], start: int) -> list[NDArray[np.float32]]:
        """Add quiet frames (first one at absolute `start`) to the current pause."""
        out: list[NDArray[np.float32]] = []
        if self._run_start is None:
            self._run_start = start
        length = start + frames.shape[1] - self._run_start
        self._run = np.concatenate([self._run, frames], axis=1)
        if length > self._certain:
            if self._fade_out is None:
                # The cut is certain: release the kept start, keep the crossfade's first half.
                lead = self._head - self._fade // 2
                out.append(np.ascontiguousarray(self._run[:, :lead]))
                self._fade_out = np.ascontiguousarray(self._run[:, lead : lead + self._fade])
            tail = self._keep - self._head + self._fade // 2
            self._run = np.ascontiguousarray(self._run[:, self._run.shape[1] - tail :])
        return out

    def _end_pause(self, end: int) -> list[NDArray[np.float32]]:
        """The pause ended at absolute frame `end`: cut it or give it back whole."""
        if self._run_start is None:
            return []
        start = self._run_start
        run = self._run
        self._run_start = None
        self._run = self._empty()
        if self._fade_out is None:
            return [run]
        fade_out, self._fade_out = self._fade_out, None
        cut_from = start + self._head
        cut_to = end - (self._keep - self._head)
        self.cuts.append((cut_from / self._rate, cut_to / self._rate))
        return [equal_power(fade_out, run[:, : self._fade]), run[:, self._fade :]]

    def _feed(self, frames: NDArray[np.float32], flags: NDArray[np.bool_]) -> NDArray[np.float32]:
        out: list[NDArray[np.float32]] = []
        first = self._decided - frames.shape[1]
        edges = np.flatnonzero(np.diff(flags.astype(np.int8))) + 1
        bounds = [0, *edges.tolist(), flags.shape[0]]
        for lo, hi in itertools.pairwise(bounds):
            if hi <= lo:
                continue
            if flags[lo]:
                out.extend(self._quiet(frames[:, lo:hi], first + lo))
            else:
                out.extend(self._end_pause(first + lo))
                out.append(frames[:, lo:hi])
        if not out:
            return self._empty()
        return np.ascontiguousarray(np.concatenate(out, axis=1), dtype=np.float32)

    def process(self, block: NDArray[np.float32]) -> NDArray[np.float32]:
        if self._first is None and block.shape[1] > 0:
            self._first = np.array(block[:, :1], dtype=np.float32)
        out = self._feed(*self._decide(block))
        self._given += out.shape[1]
        return out

    def flush(self) -> NDArray[np.float32]:
        out = self._feed(*self._decide(np.zeros((self._channels, self._lag), dtype=np.float32)))
        end = self._decided
        rest = self._end_pause(end)
        done = np.ascontiguousarray(np.concatenate([out, *rest], axis=1), dtype=np.float32)
        if self._given + done.shape[1] == 0 and self._first is not None:
            # One pause, cut whole from frame 0: keep that frame, the cut starts after it.
            start, stop = self.cuts[0]
            self.cuts[0] = (max(start, 1 / self._rate), stop)
            done = self._first
        self._given += done.shape[1]
        return done
