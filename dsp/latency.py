"""Latency compensation for effects that look ahead.

A lookahead kernel's output lags its input by a fixed number of frames. `Lookahead` drops that
many frames from the start of the output and pushes as many zeros through at `flush`, so the
effect's output lines up with its input sample for sample and keeps its length.
"""

import numpy as np
from numpy.typing import NDArray


class Lookahead:
    """Base of the limiters and the gate: subclasses call `_start_latency` when configured and
    implement `_render` (the kernel call, lagging by that latency)."""

    _channels: int = 1
    _latency: int = 0
    _skip: int = 0

    def _start_latency(self, channels: int, latency: int) -> None:
        self._channels = channels
        self._latency = latency
        self._skip = latency

    def _render(self, block: NDArray[np.float32]) -> NDArray[np.float32]:
        raise NotImplementedError

    def _aligned(self, y: NDArray[np.float32]) -> NDArray[np.float32]:
        if self._skip:
            drop = min(self._skip, y.shape[1])
            self._skip -= drop
            y = np.ascontiguousarray(y[:, drop:])
        return y

    def process(self, block: NDArray[np.float32]) -> NDArray[np.float32]:
        return self._aligned(self._render(block))

    def flush(self) -> NDArray[np.float32]:
        tail = np.zeros((self._channels, self._latency), dtype=np.float32)
        return self._aligned(self._render(tail))
