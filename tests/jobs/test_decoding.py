"""`read_blocks` gives exactly the samples of one whole-file read, for every block size and
every compressed input libsndfile decodes, and an MP3's samples are ffmpeg's.

libsndfile 1.2.2 decoded MP3s wrongly when python-soundfile read them in blocks (its seek
around each read reset the decoder): thousands of wrong frames from some block boundaries. Opus
went wrong the same way with small blocks (a 100-frame block off by up to 0.07).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from numpy.typing import NDArray

from jobs.decoding import ContinuousReader, read_blocks
from tests.ebur128 import FFMPEG
from tests.loudness_signals import music_like


def encode(path: Path, rate: int, channels: int, seconds: float, subtype: str | None) -> Path:
    """Music-like audio written by libsndfile (LAME for MP3), as a user's upload would be."""
    audio = 0.5 * music_like(rate, seconds, 3)[:channels]
    fmt = "MP3" if path.suffix == ".mp3" else "OGG" if path.suffix == ".ogg" else "FLAC"
    sf.write(str(path), audio.T, rate, format=fmt, subtype=subtype)
    return path


def one_call(path: Path) -> NDArray[np.float32]:
    """The whole file in one libsndfile read, (channels, frames)."""
    data, _ = sf.read(str(path), dtype="float32", always_2d=True)
    return np.ascontiguousarray(data.T)


def in_blocks(path: Path, block_frames: int) -> NDArray[np.float32]:
    with ContinuousReader(path) as reader:
        blocks = list(read_blocks(reader, block_frames))
    assert all(b.dtype == np.float32 and b.flags.c_contiguous for b in blocks)
    assert all(b.shape[1] == block_frames for b in blocks[:-1])
    return np.concatenate(blocks, axis=1)


def ffmpeg_decode(path: Path, channels: int) -> NDArray[np.float32]:
    assert FFMPEG, "ffmpeg is not installed (apt-get install ffmpeg; .ci/run does it)"
    raw = subprocess.run(
        [FFMPEG, "-v", "error", "-i", str(path), "-f", "f32le", "-c:a", "pcm_f32le", "-"],
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(raw, np.float32).reshape(-1, channels).T


@pytest.mark.parametrize(
    ("name", "rate", "channels", "subtype"),
    [
        ("a.mp3", 48_000, 2, None),
        ("a.mp3", 44_100, 1, None),
        ("a.mp3", 22_050, 2, None),  # MPEG-2: 576-sample frames
        ("a.ogg", 48_000, 2, "VORBIS"),
        ("a.ogg", 48_000, 1, "OPUS"),
        ("a.flac", 44_100, 2, "PCM_24"),
    ],
)
def test_blocks_of_any_size_are_the_one_call_decode(
    tmp_path: Path, name: str, rate: int, channels: int, subtype: str | None
) -> None:
    path = encode(tmp_path / name, rate, channels, 6.0, subtype)
    whole = one_call(path)
    assert whole.shape[1] >= 6 * rate - 2048  # the whole file, many blocks of each size
    for block_frames in (65536, 4096, 1152, 1000, 577, 100):
        got = in_blocks(path, block_frames)
        assert got.shape == whole.shape, block_frames
        bad = np.flatnonzero(np.any(got != whole, axis=0))
        assert bad.size == 0, f"{block_frames}-frame blocks: {bad.size} wrong frames from {bad[:1]}"


@pytest.mark.parametrize(("rate", "channels"), [(48_000, 2), (44_100, 1)])
def test_an_mp3_read_in_blocks_is_what_ffmpeg_decodes(
    tmp_path: Path, rate: int, channels: int
) -> None:
    path = encode(tmp_path / "a.mp3", rate, channels, 8.0, None)
    got = in_blocks(path, 4096)
    ref = ffmpeg_decode(path, channels)
    # Both honour the LAME header's encoder delay and padding: aligned as they come, same length.
    assert got.shape == ref.shape
    assert float(np.abs(got - ref).max()) <= 1e-5


def test_read_blocks_refuses_an_empty_block_size(tmp_path: Path) -> None:
    path = encode(tmp_path / "a.flac", 48_000, 1, 0.1, "PCM_16")
    with ContinuousReader(path) as reader, pytest.raises(ValueError, match="positive"):
        next(read_blocks(reader, 0))
