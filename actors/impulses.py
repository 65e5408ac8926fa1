"""Impulse responses ready for convolution, cached per actor.

Building a `PartitionedIR` costs one FFT per partition (a 2.5 s hall at 48 kHz is ~8 FFTs of
32k points per channel) and an uploaded IR must also be read and maybe resampled, so each actor
keeps them: an LRU bounded in bytes, keyed by (IR id, sample rate, partition size). Presets are
built at actor start for the common rates; uploads are loaded on first use.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from numpy.typing import NDArray

from actors.binding import Impulses
from dsp.chain import Chain
from dsp.convolution import DEFAULT_BLOCK_SIZE, PartitionedIR
from dsp.impulses import preset
from dsp.resample import Resample
from jobs.effects import IR_PRESETS
from jobs.errors import BadInput, UnsupportedAudio
from jobs.probe import check_block
from jobs.settings import MAX_SAMPLE_ABS

CacheKey = tuple[str, int, int]
"""(IR id: preset name or uploaded file id, stream sample rate, partition block size)."""


@dataclass(frozen=True, slots=True)
class LoadedIR:
    ir: NDArray[np.float32]
    partitions: PartitionedIR

    @property
    def nbytes(self) -> int:
        return int(self.ir.nbytes) + self.partitions.nbytes


def read_ir(path: Path, sample_rate: int) -> NDArray[np.float32]:
    """An uploaded IR as (channels, n) float32 at `sample_rate` (resampled with the same
    resampler the chain uses, so an IR sounds the same whatever rate it was uploaded at)."""
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, OSError) as exc:
        raise UnsupportedAudio(
            f"impulse response {path.name} is not decodable audio: {exc}"
        ) from exc
    if data.shape[0] == 0:
        raise UnsupportedAudio(f"impulse response {path.name} holds no frames")
    ir = np.ascontiguousarray(data.T)
    check_block(ir, 0, MAX_SAMPLE_ABS, f"impulse response {path.name}")  # NaN would spread
    if rate != sample_rate:
        ir, _ = Chain([Resample(rate=sample_rate)]).process_array(ir, int(rate))
    return ir


class IRCache:
    """Thread-safe LRU of `LoadedIR`s bounded by `max_bytes` (an entry larger than the bound
    is still returned, just not kept). Counts hits and misses for `stats()` and metrics."""

    def __init__(self, max_bytes: int, block_size: int = DEFAULT_BLOCK_SIZE) -> None:
        self.max_bytes = max_bytes
        self.block_size = block_size
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[CacheKey, LoadedIR] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        return self._bytes

    def ids(self) -> set[str]:
        with self._lock:
            return {key[0] for key in self._entries}

    def preload_presets(self, rates: Iterable[int]) -> None:
        """Build every preset for `rates` without counting misses (actor start, not jobs)."""
        for rate in rates:
            for name in IR_PRESETS:
                self._store((name, rate, self.block_size), self._build(preset(name, rate)))

    def get(self, ir_id: str, sample_rate: int, uploads: Mapping[str, Path]) -> LoadedIR:
        """The IR `ir_id` (preset name or a key of `uploads`) at `sample_rate`."""
        key = (ir_id, sample_rate, self.block_size)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return entry
            self.misses += 1
        if ir_id in IR_PRESETS:
            ir = preset(ir_id, sample_rate)
        elif ir_id in uploads:
            ir = read_ir(uploads[ir_id], sample_rate)
        else:
            raise BadInput(
                f"reverb.impulse {ir_id!r} is neither a preset ({', '.join(IR_PRESETS)}) "
                "nor an attached audio file"
            )
        entry = self._build(ir)
        self._store(key, entry)
        return entry

    def for_job(self, uploads: Mapping[str, Path]) -> Impulses:
        """The `impulses` callable `build_chain` wants, resolving uploads to `uploads` paths."""

        def impulses(ir_id: str, sample_rate: int) -> tuple[NDArray[np.float32], PartitionedIR]:
            entry = self.get(ir_id, sample_rate, uploads)
            return entry.ir, entry.partitions

        return impulses

    def _build(self, ir: NDArray[np.float32]) -> LoadedIR:
        return LoadedIR(ir, PartitionedIR.build(ir, self.block_size))

    def _store(self, key: CacheKey, entry: LoadedIR) -> None:
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes
            if entry.nbytes > self.max_bytes:
                return
            self._entries[key] = entry
            self._bytes += entry.nbytes
            while self._bytes > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= evicted.nbytes


def uncached_impulses(uploads: Mapping[str, Path]) -> Impulses:
    """Impulses for a one-off local run (the CLI): nothing is kept between calls."""
    return IRCache(max_bytes=0).for_job(uploads)
