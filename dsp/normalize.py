"""Two-pass normalisation to a sample-peak or integrated-loudness target, and delivery to a
loudness spec (target and true-peak ceiling)."""

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
        self._peak = 0.0
        self._meter: LoudnessMeter | None = None
        self.gain_db: float | None = None

    def begin_analysis(self, sample_rate: int, channels: int) -> None:
        self._peak = 0.0
        self._meter = LoudnessMeter(sample_rate, channels) if self.mode == "loudness" else None
        self.gain_db = None

    def analyze(self, block: NDArray[np.float32]) -> None:
        if self._meter is not None:
            self._meter.add(block)
        elif block.size:
            peak = float(np.max(np.abs(block)))
            if not math.isfinite(peak):  # max() would skip NaN and normalise the rest
                raise ValueError("normalize: the signal holds NaN or infinite samples")
            self._peak = max(self._peak, peak)

    def finish_analysis(self) -> None:
        if self._meter is not None:
            if not self._meter.gating_blocks:
                seconds = self._meter.frames / self._meter.sample_rate
                raise ValueError(
                    "normalize LOUDNESS needs at least 400 ms of signal (one BS.1770 gating "
                    f"block) to measure; the signal reaching it lasts {seconds:.6g} s"
                )
            level = self._meter.integrated()
        else:
            level = 20.0 * math.log10(self._peak) if self._peak > 0.0 else -math.inf
        self.gain_db = self.target - level if math.isfinite(level) else 0.0

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
        self._meter: LoudnessMeter | None = None
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

    def begin_analysis(self, sample_rate: int, channels: int) -> None:
        self._meter = LoudnessMeter(sample_rate, channels)

    def analyze(self, block: NDArray[np.float32]) -> None:
        assert self._meter is not None, "begin_analysis first"
        self._meter.add(block)

    def finish_analysis(self) -> None:
        assert self._meter is not None, "begin_analysis first"
        self.measured_lufs = self._meter.integrated()
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
