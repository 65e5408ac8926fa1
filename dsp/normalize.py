"""Two-pass normalisation to a sample-peak or integrated-loudness target."""

import math

import numpy as np
from numpy.typing import NDArray

from dsp.gain import apply_gain, db_to_linear
from dsp.loudness import LoudnessMeter

MODES = ("peak", "loudness")


class Normalize:
    """Static gain that brings the stream to ``target``: dBFS sample peak or LUFS (BS.1770-4).

    Needs to see the whole stream first: Chain runs an analysis pass (``Analyzer`` protocol)
    that feeds the signal arriving here to ``analyze``; the gain is target - measured level.
    A silent stream gets unity gain.
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
            level = self._meter.integrated()
        else:
            level = 20.0 * math.log10(self._peak) if self._peak > 0.0 else -math.inf
        self.gain_db = self.target - level if math.isfinite(level) else 0.0

    def configure(self, sample_rate: int, channels: int) -> tuple[int, int]:
        self._channels = channels
        return sample_rate, channels

    def process(self, block: NDArray[np.float32]) -> NDArray[np.float32]:
        if self.gain_db is None:
            raise RuntimeError("Normalize needs an analysis pass first: run it inside a Chain")
        return apply_gain(block, db_to_linear(self.gain_db))

    def flush(self) -> NDArray[np.float32]:
        return np.zeros((self._channels, 0), dtype=np.float32)
