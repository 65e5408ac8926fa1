"""FrameQueue: a FIFO of (channels, n) frames for effects that hold samples back."""

import numpy as np
from numpy.typing import NDArray


class FrameQueue:
    """Append blocks at the end, take frames from the front; holds only what is not yet taken."""

    def __init__(self, channels: int, dtype: type[np.floating] = np.float32) -> None:
        self.channels = channels
        self.dtype = dtype
        self._parts: list[NDArray[np.floating]] = []
        self._frames = 0

    def __len__(self) -> int:
        return self._frames

    def push(self, block: NDArray[np.floating]) -> None:
        if block.shape[1]:
            self._parts.append(block)
            self._frames += block.shape[1]

    def pop(self, n: int) -> NDArray[np.floating]:
        """Remove and return the first min(n, len) frames as one C-contiguous array."""
        out = np.empty((self.channels, max(0, min(n, self._frames))), dtype=self.dtype)
        self.pop_into(out)
        return out

    def pop_into(self, out: NDArray[np.floating]) -> None:
        """Remove the first out.shape[1] frames (the queue must hold as many) into ``out``."""
        n = out.shape[1]
        if n > self._frames:
            raise ValueError(f"{n} frames asked of a queue holding {self._frames}")
        filled = 0
        while filled < n:
            part = self._parts[0]
            take = min(part.shape[1], n - filled)
            out[:, filled : filled + take] = part[:, :take]
            filled += take
            if take == part.shape[1]:
                self._parts.pop(0)
            else:
                self._parts[0] = part[:, take:]
        self._frames -= n

    def pop_all(self) -> NDArray[np.floating]:
        return self.pop(self._frames)
