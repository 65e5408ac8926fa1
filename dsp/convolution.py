"""Uniformly partitioned FFT convolution (overlap-save, frequency-domain delay line) and Reverb."""

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dsp.buffers import FrameQueue
from dsp.jit import kernel


def _fft() -> Any:
    """scipy.fft, imported on first use: a chain without a reverb does not pay its import."""
    import scipy.fft as fft

    return fft


class RealTransforms:
    """The forward and inverse real FFTs of (channels, size) float32 frames a convolver runs
    per block, on preallocated input buffers (scipy.fft, one worker: two actors already fill
    the cores). FFTW (pyFFTW) would be 2.5x faster here, but its wheels bundle GPL-licensed
    FFTW, which a permissively licensed engine does not ship.

    Write the frame into ``frame``, call ``forward`` (``frame`` is kept); write a spectrum into
    ``spectrum``, call ``inverse`` and multiply by ``inverse_scale``. One instance per stream.
    """

    def __init__(self, channels: int, size: int) -> None:
        self.size = size
        self.frame = np.zeros((channels, size), dtype=np.float32)
        self.spectrum = np.zeros((channels, size // 2 + 1), dtype=np.complex64)
        self.inverse_scale = np.float32(1.0)

    def forward(self) -> NDArray[np.complex64]:
        """rfft of ``frame``."""
        out: NDArray[np.complex64] = _fft().rfft(self.frame, axis=1, workers=1)
        return out

    def inverse(self) -> NDArray[np.float32]:
        """irfft of ``spectrum``."""
        out: NDArray[np.float32] = _fft().irfft(self.spectrum, n=self.size, axis=1, workers=1)
        return out


DEFAULT_BLOCK_SIZE = 16384


@dataclass(frozen=True)
class PartitionedIR:
    """Spectra of an IR cut into P partitions of ``block_size`` frames (read-only, shareable).

    ``spectra[p, c]`` = rfft of partition p of IR channel c zero-padded to 2 * block_size
    (complex64). Building costs one FFT per partition; actors cache these objects and reuse
    them across jobs, so nothing in here is ever written after ``build``.
    """

    spectra: NDArray[np.complex64]
    block_size: int
    length: int

    @staticmethod
    def build(ir: NDArray[np.float32], block_size: int = DEFAULT_BLOCK_SIZE) -> "PartitionedIR":
        """Partition ``ir`` (ir_channels, n) and transform every partition once."""
        ir = np.asarray(ir, dtype=np.float32)
        if ir.ndim == 1:
            ir = ir[None, :]
        if ir.ndim != 2 or ir.shape[1] == 0 or ir.shape[0] == 0:
            raise ValueError(f"IR must be (channels, frames) with frames > 0, got {ir.shape}")
        if block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {block_size}")
        channels, n = ir.shape
        parts = math.ceil(n / block_size)
        padded = np.zeros((parts, channels, 2 * block_size), dtype=np.float32)
        for p in range(parts):
            chunk = ir[:, p * block_size : (p + 1) * block_size]
            padded[p, :, : chunk.shape[1]] = chunk
        spectra = _fft().rfft(padded, axis=2, workers=1).astype(np.complex64)
        spectra.flags.writeable = False
        return PartitionedIR(spectra=spectra, block_size=block_size, length=n)

    @property
    def channels(self) -> int:
        return int(self.spectra.shape[1])

    @property
    def partitions(self) -> int:
        return int(self.spectra.shape[0])

    @property
    def nbytes(self) -> int:
        return int(self.spectra.nbytes)


@kernel
def spectral_mac(
    fdl: NDArray[np.complex64],
    newest: int,
    spectra: NDArray[np.complex64],
    channel_map: NDArray[np.int64],
    acc: NDArray[np.complex64],
) -> None:
    """acc[c] = sum_p fdl[(newest - p) mod P, c] * spectra[p, channel_map[c]].

    The frequency-domain delay line ``fdl`` holds the spectra of the last P input frames, slot
    ``newest`` the latest; the sum over partitions is the overlap-save block convolution.
    """
    parts, channels, bins = fdl.shape
    for c in range(channels):
        h = channel_map[c]
        for k in range(bins):
            acc[c, k] = 0.0
        for p in range(parts):
            s = (newest - p) % parts
            for k in range(bins):
                acc[c, k] += fdl[s, c, k] * spectra[p, h, k]


class Reverb:
    """Convolution reverb: y = (1 - mix) x + mix (x * ir delayed by pre_delay_ms).

    ``ir`` (ir_channels, n) must already be at the stream's sample rate and is not rescaled.
    Channel rule: output channel c is convolved with IR channel c mod ir_channels (mono IR on
    every channel; stereo IR channel-wise on stereo; the channel count never changes).
    ``tail=True`` appends the decay: the output has n + pre_delay + len(ir) - 1 frames;
    ``tail=False`` cuts it to the input length. ``partitions`` may be a cached
    ``PartitionedIR.build(ir, block_size)``; the block size then sets the partition size.
    Output is emitted in whole partitions, so blocks lag the input by up to block_size frames.
    """

    def __init__(
        self,
        ir: NDArray[np.float32],
        mix: float,
        pre_delay_ms: float = 0.0,
        tail: bool = True,
        partitions: PartitionedIR | None = None,
    ) -> None:
        if not 0.0 <= mix <= 1.0:
            raise ValueError(f"reverb mix must be in [0, 1], got {mix}")
        if not (pre_delay_ms >= 0.0 and math.isfinite(pre_delay_ms)):
            raise ValueError(f"reverb pre_delay_ms must be >= 0, got {pre_delay_ms}")
        self.ir = np.asarray(ir, dtype=np.float32)
        if self.ir.ndim == 1:
            self.ir = self.ir[None, :]
        self.mix = float(mix)
        self.pre_delay_ms = float(pre_delay_ms)
        self.tail = bool(tail)
        if partitions is None:
            partitions = PartitionedIR.build(self.ir, DEFAULT_BLOCK_SIZE)
        elif partitions.channels != self.ir.shape[0] or partitions.length != self.ir.shape[1]:
            raise ValueError("partitions were built from an IR of a different shape")
        self.partitions = partitions
        self._setup(48000, 1)

    def _setup(self, sample_rate: int, channels: int) -> None:
        p = self.partitions
        b = p.block_size
        self._channels = channels
        self._pre_delay = round(self.pre_delay_ms * sample_rate / 1000.0)
        self._channel_map = np.arange(channels, dtype=np.int64) % p.channels
        self._fdl = np.zeros((p.partitions, channels, b + 1), dtype=np.complex64)
        self._fft = RealTransforms(channels, 2 * b)
        self._newest = -1
        self._pending = FrameQueue(channels)
        self._pending.push(np.zeros((channels, self._pre_delay), dtype=np.float32))
        self._wet = FrameQueue(channels)
        self._dry = FrameQueue(channels)
        self._inputs = 0
        self._emitted = 0

    def configure(self, sample_rate: int, channels: int) -> tuple[int, int]:
        self._setup(sample_rate, channels)
        return sample_rate, channels

    def _convolve_pending(self) -> None:
        """Run every complete partition-sized block of pending input through the convolver."""
        b = self.partitions.block_size
        parts = self.partitions.partitions
        fft = self._fft
        while len(self._pending) >= b:
            fft.frame[:, :b] = fft.frame[:, b:]
            self._pending.pop_into(fft.frame[:, b:])
            self._newest = (self._newest + 1) % parts
            self._fdl[self._newest] = fft.forward()
            spectral_mac(
                self._fdl, self._newest, self.partitions.spectra, self._channel_map, fft.spectrum
            )
            out = fft.inverse()
            self._wet.push(np.multiply(out[:, b:], fft.inverse_scale))

    def _mix(self, n: int) -> NDArray[np.float32]:
        wet: NDArray[np.float32] = self._wet.pop(n)
        self._emitted += n
        if self.mix == 1.0:
            return wet
        dry = self._dry.pop(n)
        if dry.shape[1] < n:
            dry = np.concatenate(
                [dry, np.zeros((self._channels, n - dry.shape[1]), dtype=np.float32)], axis=1
            )
        out = (1.0 - self.mix) * dry.astype(np.float64) + self.mix * wet.astype(np.float64)
        return out.astype(np.float32)

    def output_frames(self, input_frames: int) -> int:
        if self.tail:
            return input_frames + self._pre_delay + self.partitions.length - 1
        return input_frames

    def _total_frames(self) -> int:
        return self.output_frames(self._inputs)

    def process(self, block: NDArray[np.float32]) -> NDArray[np.float32]:
        self._inputs += block.shape[1]
        self._pending.push(block)
        if self.mix < 1.0:
            self._dry.push(block)  # a fully wet reverb keeps no dry signal
        self._convolve_pending()
        return self._mix(min(len(self._wet), self._inputs - self._emitted))

    def flush(self) -> NDArray[np.float32]:
        b = self.partitions.block_size
        remaining = self._total_frames() - self._emitted
        missing = remaining - len(self._wet)
        if missing > 0:
            blocks = math.ceil(missing / b)
            fill = blocks * b - len(self._pending)
            self._pending.push(np.zeros((self._channels, fill), dtype=np.float32))
            self._convolve_pending()
        out = self._mix(max(remaining, 0))
        self._wet = FrameQueue(self._channels)
        return out
