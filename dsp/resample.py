"""Streaming sample-rate conversion with soxr."""

import numpy as np
import soxr
from numpy.typing import NDArray

QUALITY = "HQ"


class Resample:
    """Convert to ``rate`` Hz with ``soxr.ResampleStream`` (quality HQ, float32, deterministic).

    soxr compensates its own filter delay, so the whole output has round(n * rate / fs) frames
    (within a frame or two); blocks come out with some latency and flush() returns the rest.
    Equal rates pass through untouched.
    """

    def __init__(self, rate: int) -> None:
        if int(rate) != rate or rate <= 0:
            raise ValueError(f"resample rate must be a positive integer, got {rate}")
        self.rate = int(rate)
        self._channels = 1
        self._stream: soxr.ResampleStream | None = None

    def configure(self, sample_rate: int, channels: int) -> tuple[int, int]:
        self._channels = channels
        self._stream = None
        if sample_rate != self.rate:
            self._stream = soxr.ResampleStream(
                sample_rate, self.rate, channels, dtype="float32", quality=QUALITY
            )
        return self.rate, channels

    def _run(self, block: NDArray[np.float32], last: bool) -> NDArray[np.float32]:
        assert self._stream is not None
        frames = np.ascontiguousarray(block.T)
        out = self._stream.resample_chunk(frames, last=last)
        return np.ascontiguousarray(np.asarray(out, dtype=np.float32).reshape(-1, self._channels).T)

    def process(self, block: NDArray[np.float32]) -> NDArray[np.float32]:
        if self._stream is None:
            return block
        return self._run(block, last=False)

    def flush(self) -> NDArray[np.float32]:
        if self._stream is None:
            return np.zeros((self._channels, 0), dtype=np.float32)
        return self._run(np.zeros((0, self._channels), dtype=np.float32).T, last=True)
