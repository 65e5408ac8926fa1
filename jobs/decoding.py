"""Reading an audio file block by block, with exactly the samples one whole-file read gives.

python-soundfile brackets every read of a seekable file with `sf_seek` (its `tell()` before,
a seek to where it stopped after). libsndfile 1.2.2 hands each of those seeks to `mpg123_seek`,
even a seek to where the decoder already is, and the MP3 decoder resumes from the seek with
runs of wrong samples (thousands of frames, errors up to 0.4) at some read boundaries; a
seek back to the start after reading changes the last bit of some samples. A read that is not
preceded by a seek just continues `mpg123_read` where the last one stopped, so after one seek
to the start (as `soundfile.read` makes), blocks of any size, down to one frame, are exactly
the one-call decode, which matches ffmpeg's. Opus went wrong the same way with small blocks
(one 100-frame block off by 0.07); WAV, FLAC and Vorbis read the same either way. Every input
is read this one way, so uploads, jobs and the CLI see the same samples.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
from numpy.typing import NDArray


class ContinuousReader(sf.SoundFile):  # type: ignore[misc]  # soundfile ships no types
    """A `soundfile.SoundFile` (read mode) whose reads never seek: each continues where the
    last stopped. Read it once, front to back, with `read_blocks`; to read it again, open it
    again (a seek back resets the MP3 decoder, which then differs in the last bit)."""

    def __init__(self, path: Path) -> None:
        super().__init__(str(path))
        if super().seekable():
            # Start as `soundfile.read` does: at MPEG-2 rates (16 to 24 kHz) the decode after
            # this seek to the start differs in the last bit from the one without it.
            try:
                self.seek(0)
            except BaseException:
                self.close()
                raise

    def seekable(self) -> bool:
        # python-soundfile seeks around each read only when this is true.
        return False


def read_blocks(reader: ContinuousReader, block_frames: int) -> Iterator[NDArray[np.float32]]:
    """The rest of `reader`, as float32 `(channels, frames)` blocks of at most `block_frames`,
    until the decoder returns nothing (the decoded count, which for MP3 may differ from the
    header's estimate). libsndfile decodes into one interleaved buffer, reused; each block is
    a fresh array (a consumer may keep it)."""
    if block_frames <= 0:
        raise ValueError(f"block_frames must be positive, got {block_frames}")
    interleaved = np.empty((block_frames, reader.channels), dtype=np.float32)
    while True:
        block = reader.read(block_frames, dtype="float32", always_2d=True, out=interleaved)
        if block.shape[0] == 0:
            return
        yield block.T.copy()  # C order; never a view of the reused buffer (mono)
