"""Two-pass normalisation to a sample-peak or integrated-loudness target, and delivery to a
loudness spec (target and true-peak ceiling).

Both effects measure the signal reaching them (`Level`), then `settle` on the measurement: a
fixed gain (and limiter) from then on. A `Level` of consecutive parts of a stream merges into
the whole stream's, so parts measured apart (`dsp.segments.measure_segment`) settle an effect
exactly as one analysis pass over the whole stream does.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from dsp.gain import apply_gain, db_to_linear
from dsp.loudness import LoudnessMeter
from dsp.truepeak import TruePeakLimiter

MODES = ("peak", "loudness")
LIMITER_MARGIN_DB = 0.05
"""The limiter aims this far under the ceiling: its smoothed gain, applied per sample, can
move an inter-sample peak by a few hundredths of a dB."""


class Level:
    """What a two-pass effect measures of the signal reaching it: the sample peak, and with
    `loudness` the BS.1770 100 ms step energies (`LoudnessMeter`).

    >>> level = Level(48_000, 2, loudness=False)
    >>> level.add(np.full((2, 10), 0.5, np.float32)); level.peak
    0.5
    """

    def __init__(self, sample_rate: int, channels: int, loudness: bool) -> None:
        self.peak = 0.0
        self.meter = LoudnessMeter(sample_rate, channels) if loudness else None

    def add(self, block: NDArray[np.float32]) -> None:
        """Measure (channels, n) samples; ValueError for NaN or infinity."""
        if self.meter is not None:
            self.meter.add(block)
        elif block.size:
            peak = float(np.max(np.abs(block)))
            if not math.isfinite(peak):  # max() would skip NaN and normalise the rest
                raise ValueError("normalize: the signal holds NaN or infinite samples")
            self.peak = max(self.peak, peak)

    def warm(self, block: NDArray[np.float32], first_step: int) -> None:
        """Frames just before a part whose 100 ms step `first_step` comes next: they settle the
        K-weighting filters and are not measured (`LoudnessMeter.warm`)."""
        if self.meter is not None:
            self.meter.warm(block, first_step)

    def merge(self, later: Level) -> None:
        """Join the measurement of the part that follows this one (`warm`ed on the frames
        before it): peaks take the maximum, loudness steps are appended in order, so every
        400 ms gating block is the unsplit stream's."""
        self.peak = max(self.peak, later.peak)
        if self.meter is not None and later.meter is not None:
            self.meter.merge(later.meter)


class Normalize:
    """Static gain that brings the stream to ``target``: dBFS sample peak or LUFS (BS.1770-4).

    Needs to see the whole stream first: Chain runs an analysis pass (``Analyzer`` protocol)
    that feeds the signal arriving here to ``analyze``; the gain is target - measured level.
    A silent stream gets unity gain. Loudness needs at least one 400 ms gating block: a
    shorter stream raises ValueError rather than pass through unmeasured.
    """

    needs_analysis = True

    def __init__(self, mode: str, target: float) -> None:
        if mode not in MODES:
            raise ValueError(f"normalize mode must be one of {', '.join(MODES)}, got {mode!r}")
        if not math.isfinite(target):
            raise ValueError(f"normalize target must be finite, got {target}")
        self.mode = mode
        self.target = float(target)
        self._channels = 1
        self._level = self.level(48_000, 1)
        self.gain_db: float | None = None

    def level(self, sample_rate: int, channels: int) -> Level:
        """An empty measurement of what this effect needs, for a stream of this format."""
        return Level(sample_rate, channels, loudness=self.mode == "loudness")

    def begin_analysis(self, sample_rate: int, channels: int) -> None:
        self._level = self.level(sample_rate, channels)
        self.gain_db = None

    def analyze(self, block: NDArray[np.float32]) -> None:
        self._level.add(block)

    def finish_analysis(self) -> None:
        self._fix(self._level)

    def settle(self, level: Level) -> None:
        """Fix the gain from `level`, the measurement of the whole stream reaching this effect
        (merged from its parts); no analysis pass then."""
        self._fix(level)
        self.needs_analysis = False

    def _fix(self, level: Level) -> None:
        meter = level.meter
        if meter is not None:
            if not meter.gating_blocks:
                seconds = meter.frames / meter.sample_rate
                raise ValueError(
                    "normalize LOUDNESS needs at least 400 ms of signal (one BS.1770 gating "
                    f"block) to measure; the signal reaching it lasts {seconds:.6g} s"
                )
            measured = meter.integrated()
        else:
            measured = 20.0 * math.log10(level.peak) if level.peak > 0.0 else -math.inf
        self.gain_db = self.target - measured if math.isfinite(measured) else 0.0

    def fix_loudness(self, measured_lufs: float) -> None:
        """Take `measured_lufs` as the level instead of measuring the stream (album mode: the
        loudness of several files together); no analysis pass then."""
        if self.mode != "loudness":
            raise ValueError("only a LOUDNESS normalisation takes a measured loudness")
        self.needs_analysis = False
        self.gain_db = self.target - measured_lufs if math.isfinite(measured_lufs) else 0.0

    def configure(self, sample_rate: int, channels: int) -> tuple[int, int]:
        self._channels = channels
        return sample_rate, channels

    def process(self, block: NDArray[np.float32]) -> NDArray[np.float32]:
        if self.gain_db is None:
            raise RuntimeError("Normalize needs an analysis pass first: run it inside a Chain")
        return apply_gain(block, db_to_linear(self.gain_db))

    def flush(self) -> NDArray[np.float32]:
        return np.zeros((self._channels, 0), dtype=np.float32)


class LoudnessNormalize:
    """Delivery to a loudness spec: static gain to ``target_lufs`` (BS.1770-4 integrated), then
    a true-peak limiter holding ``ceiling_dbtp`` (see ``TruePeakLimiter``). Sample rate kept.

    Two passes through Chain (``Analyzer``). When the input has no integrated loudness (digital
    silence, under 400 ms, or everything below the -70 LUFS gate) the stream passes unchanged
    and ``reason`` says why. ``gain_trim_db`` and ``ceiling_trim_db`` shift the gain and the
    limiter's ceiling for a re-render (what was delivered missed the spec after encoding).
    """

    needs_analysis = True

    def __init__(self, target_lufs: float, ceiling_dbtp: float) -> None:
        if not (math.isfinite(target_lufs) and math.isfinite(ceiling_dbtp)):
            raise ValueError("loudness target and ceiling must be finite")
        if ceiling_dbtp > 0.0:
            raise ValueError(f"true-peak ceiling must be <= 0 dBTP, got {ceiling_dbtp}")
        self.target_lufs = float(target_lufs)
        self.ceiling_dbtp = float(ceiling_dbtp)
        self.gain_trim_db = 0.0
        self.ceiling_trim_db = 0.0
        self.measured_lufs = -math.inf
        self.reason = ""
        self._level = self.level(48_000, 1)
        self._limiter: TruePeakLimiter | None = None
        self._channels = 1

    @property
    def gain_db(self) -> float:
        """Static gain of the real pass (0 when the input has no loudness)."""
        if not math.isfinite(self.measured_lufs):
            return 0.0
        return self.target_lufs - self.measured_lufs + self.gain_trim_db

    def fix_loudness(self, measured_lufs: float) -> None:
        """Take `measured_lufs` as the input's loudness instead of measuring the stream (album
        mode: the loudness of several files together); no analysis pass then."""
        self.needs_analysis = False
        self.measured_lufs = measured_lufs
        self.reason = "" if math.isfinite(measured_lufs) else "the album has no integrated loudness"

    def level(self, sample_rate: int, channels: int) -> Level:
        """An empty measurement of what this effect needs, for a stream of this format."""
        return Level(sample_rate, channels, loudness=True)

    def begin_analysis(self, sample_rate: int, channels: int) -> None:
        self._level = self.level(sample_rate, channels)

    def analyze(self, block: NDArray[np.float32]) -> None:
        self._level.add(block)

    def finish_analysis(self) -> None:
        self._fix(self._level)

    def settle(self, level: Level) -> None:
        """Fix the gain (and the limiter, at `configure`) from `level`, the measurement of the
        whole stream reaching this effect (merged from its parts); no analysis pass then."""
        self._fix(level)
        self.needs_analysis = False

    def _fix(self, level: Level) -> None:
        assert level.meter is not None, "loudness needs a loudness measurement"
        self.measured_lufs = level.meter.integrated()
        self.reason = (
            ""
            if math.isfinite(self.measured_lufs)
            else "the input has no integrated loudness (silent, below -70 LUFS or shorter than "
            "400 ms); it was left unchanged"
        )

    def configure(self, sample_rate: int, channels: int) -> tuple[int, int]:
        self._channels = channels
        self._limiter = None
        if math.isfinite(self.measured_lufs):
            ceiling = min(self.ceiling_dbtp + self.ceiling_trim_db, 0.0) - LIMITER_MARGIN_DB
            self._limiter = TruePeakLimiter(self.gain_db, ceiling)
            self._limiter.configure(sample_rate, channels)
        return sample_rate, channels

    def process(self, block: NDArray[np.float32]) -> NDArray[np.float32]:
        return block if self._limiter is None else self._limiter.process(block)

    def flush(self) -> NDArray[np.float32]:
        if self._limiter is None:
            return np.zeros((self._channels, 0), dtype=np.float32)
        return self._limiter.flush()
