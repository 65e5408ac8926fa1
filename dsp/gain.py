"""Static gain."""

import math

import numpy as np
from numpy.typing import NDArray


def db_to_linear(db: float) -> float:
    """Amplitude ratio for a level in dB: 10^(dB/20)."""
    return float(10.0 ** (db / 20.0))


def apply_gain(block: NDArray[np.float32], linear: float) -> NDArray[np.float32]:
    """block * linear, rounded once to float32 (the product is taken in float64)."""
    out: NDArray[np.float32] = (block.astype(np.float64) * linear).astype(np.float32)
    return out


class Gain:
    """Multiply by 10^(db/20)."""

    def __init__(self, db: float) -> None:
        if not math.isfinite(db):
            raise ValueError(f"gain db must be finite, got {db}")
        self.db = float(db)
        self._channels = 1

    def configure(self, sample_rate: int, channels: int) -> tuple[int, int]:
        self._channels = channels
        return sample_rate, channels

    def process(self, block: NDArray[np.float32]) -> NDArray[np.float32]:
        return apply_gain(block, db_to_linear(self.db))

    def process_into(self, block: NDArray[np.float32], out: NDArray[np.float32]) -> None:
        # The same float64 product rounded once, computed in numpy's buffered chunks.
        np.multiply(block, db_to_linear(self.db), out=out, dtype=np.float64)

    def flush(self) -> NDArray[np.float32]:
        return np.zeros((self._channels, 0), dtype=np.float32)
