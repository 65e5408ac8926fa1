"""An output assembled in place: each part of a split job writes its samples straight into
the output file at their offset, and the header goes on last.

Stitching parts that are already encoded (`actors.parts`) copies every sample once more,
alone, after all the parts: on a 60-minute job about 2 s of 24, all of it serial, because
writing fresh pages runs at a few hundred MB/s here. Where the store is a folder on this
node (`Storage.assembly`: not object storage, not a mount shared by several nodes) and the
output's samples are stored raw, the output's data is its parts' raw
samples one after the other. So a part opens the output file at `data_offset + first frame
* frame bytes` and libsndfile writes its samples there as a RAW file in the container's
byte order (through a window on the file: libsndfile embeds no RAW file at an offset, and
its virtual IO costs nothing measurable here). When every part is
in, libsndfile writes the header of an N-frame file into a sink that keeps only the header
(it seeks to frame N - 1 and writes one frame: the header counts the frames libsndfile was
told of), and those bytes go at the start of the output. The result is byte for byte the
file `process_file` writes (tests/actors/test_assembly.py compares whole files for every
container and subtype `assembles` accepts).

>>> offset = data_offset("WAV", "PCM_16", 48_000, 2)                     # doctest: +SKIP
>>> with part_writer(path, "WAV", "PCM_16", 48_000, 2, first_frame) as window:  # doctest: +SKIP
...     ...  # an `Encoder(window, "RAW", ...)` writes the part
>>> finish(path, "WAV", "PCM_16", 48_000, 2, frames)                     # doctest: +SKIP
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from jobs.errors import ProcessingFailed
from jobs.formats import SAMPLE_BYTES, max_frames, past_size_limit

BYTE_ORDER = {"WAV": "LITTLE", "W64": "LITTLE", "AIFF": "BIG", "CAF": "BIG"}
"""Output containers whose data is the raw samples, in the byte order libsndfile stores
them (the ones `jobs.formats.SAMPLE_BYTES` lists)."""
PEAK_CHUNK = frozenset({"WAV", "AIFF", "CAF"})
"""Containers whose float files carry a PEAK chunk in the header: the samples' peaks, which
only a writer of the samples knows."""
HEADER_LIMIT = 1 << 16
"""More than any header libsndfile writes for these containers (CAF's is 4096 bytes)."""


def assembles(out_format: str, out_subtype: str) -> bool:
    """True if an output of this container and subtype can be assembled in place."""
    container, subtype = out_format.upper(), out_subtype.upper()
    if container not in BYTE_ORDER or subtype not in SAMPLE_BYTES:
        return False
    if subtype == "FLOAT" and container in PEAK_CHUNK:
        return False
    return bool(sf.check_format(container, subtype))


def frame_bytes(out_subtype: str, channels: int) -> int:
    return SAMPLE_BYTES[out_subtype.upper()] * channels


class _Positioned(io.RawIOBase):
    """A file for libsndfile's virtual IO: a position and an end, moved by `seek` and by
    what `write` (the subclass's) reports written."""

    def __init__(self) -> None:
        super().__init__()
        self.position = 0
        self.length = 0

    def seekable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self.position, os.SEEK_END: self.length}[whence]
        self.position = base + offset
        return self.position

    def tell(self) -> int:
        return self.position

    def _wrote(self, count: int) -> int:
        self.position += count
        self.length = max(self.length, self.position)
        return count


class _HeaderSink(_Positioned):
    """Keeps the bytes written below `HEADER_LIMIT` and only counts the rest."""

    def __init__(self) -> None:
        super().__init__()
        self.kept = bytearray()

    def write(self, data: Any) -> int:
        start, data = self.position, bytes(data)
        if start < HEADER_LIMIT:
            kept = data[: HEADER_LIMIT - start]
            if len(self.kept) < start + len(kept):
                self.kept.extend(bytes(start + len(kept) - len(self.kept)))
            self.kept[start : start + len(kept)] = kept
        return self._wrote(len(data))

    def read(self, size: int = -1) -> bytes:
        stop = len(self.kept) if size < 0 else self.position + size
        out = bytes(self.kept[self.position : stop])
        self.position += len(out)
        return out


def _written(
    out_format: str, out_subtype: str, rate: int, channels: int, frames: int
) -> _HeaderSink:
    sink = _HeaderSink()
    with sf.SoundFile(
        sink, "w", samplerate=rate, channels=channels, format=out_format, subtype=out_subtype
    ) as writer:
        if frames > 0:
            writer.seek(frames - 1)
            writer.write(np.zeros((1, channels), dtype=np.float32))
    return sink


def data_offset(out_format: str, out_subtype: str, rate: int, channels: int) -> int:
    """Where the samples start in the output: the length of its header."""
    return _written(out_format, out_subtype, rate, channels, 0).length


class _Window(_Positioned):
    """The output file from `base` on: a RAW file written there (libsndfile embeds no RAW
    file at a descriptor's offset)."""

    def __init__(self, fd: int, base: int) -> None:
        super().__init__()
        self._fd, self._base = fd, base

    def write(self, data: Any) -> int:
        return self._wrote(os.pwrite(self._fd, data, self._base + self.position))

    def read(self, size: int = -1) -> bytes:
        return b""  # libsndfile reads no RAW header


@contextmanager
def part_writer(
    path: Path, out_format: str, out_subtype: str, rate: int, channels: int, first_frame: int
) -> Iterator[io.RawIOBase]:
    """The output being assembled at `path`, from where frame `first_frame` goes: an
    `Encoder(window, "RAW", out_subtype, ..., endian=byte_order(out_format))` writes a
    part's samples there. The file is made if missing, never truncated."""
    offset = data_offset(out_format, out_subtype, rate, channels)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        yield _Window(fd, offset + first_frame * frame_bytes(out_subtype, channels))
    finally:
        os.close(fd)


def byte_order(out_format: str) -> str:
    return BYTE_ORDER[out_format.upper()]


def finish(
    path: Path, out_format: str, out_subtype: str, rate: int, channels: int, frames: int
) -> None:
    """Put the header of a `frames`-frame output at the start of `path`, once every part has
    written its samples; the file is cut to its length (a rerun part may have left more)."""
    limit = max_frames(out_format, out_subtype, channels)
    if limit is not None and frames > limit:
        raise past_size_limit(out_format, limit)
    offset = data_offset(out_format, out_subtype, rate, channels)
    size = offset + frames * frame_bytes(out_subtype, channels)
    sink = _written(out_format, out_subtype, rate, channels, frames)
    # RIFF chunks are padded to an even length: a zero byte after odd-sized data.
    if sink.length - size not in (0, 1):
        raise ProcessingFailed(
            f"libsndfile wrote a {out_format} header of another length for {frames} frames"
        )
    if path.stat().st_size < size:
        raise ProcessingFailed("the output is shorter than its parts: a part is missing")
    with path.open("r+b") as out:
        out.write(bytes(sink.kept[:offset]))
        out.truncate(size)  # a rerun part may have left more
        out.truncate(sink.length)  # the pad byte, zero
