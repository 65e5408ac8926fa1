"""Channel layout changes."""

import numpy as np
from numpy.typing import NDArray

MODES = ("mono", "stereo", "swap")


class Channels:
    """mono: mean of all channels -> 1 channel.
    stereo: mono is duplicated to L and R; stereo passes; more than two channels keep the first
    two (L, R) and drop the rest.
    swap: exchange channels 0 and 1 (L/R); mono passes unchanged, channels 2+ stay in place.
    """

    def __init__(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"channels mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.mode = mode
        self._in = 1
        self._out = 1

    def configure(self, sample_rate: int, channels: int) -> tuple[int, int]:
        self._in = channels
        if self.mode == "mono":
            self._out = 1
        elif self.mode == "stereo":
            self._out = 2
        else:
            self._out = channels
        return sample_rate, self._out

    def process(self, block: NDArray[np.float32]) -> NDArray[np.float32]:
        if self.mode == "mono":
            if block.shape[0] == 1:
                return block
            mean: NDArray[np.float32] = (
                block.astype(np.float64).mean(axis=0, keepdims=True).astype(np.float32)
            )
            return mean
        if self.mode == "stereo":
            if block.shape[0] == 1:
                return np.ascontiguousarray(np.repeat(block, 2, axis=0))
            if block.shape[0] == 2:
                return block
            return np.ascontiguousarray(block[:2])
        if block.shape[0] < 2:
            return block
        order = np.arange(block.shape[0])
        order[0], order[1] = 1, 0
        return np.ascontiguousarray(block[order])

    def flush(self) -> NDArray[np.float32]:
        return np.zeros((self._out, 0), dtype=np.float32)
