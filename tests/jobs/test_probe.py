"""`jobs.probe.inspect`: the one check every input passes (uploads and the CLI)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from jobs.errors import UnsupportedAudio
from jobs.probe import (
    PROBE_BLOCK_FRAMES,
    NonFiniteAudio,
    TruncatedAudio,
    UndecodableAudio,
    first_bad_sample,
    inspect,
)
from jobs.settings import Settings
from tests.conftest import sine, write_wav


@pytest.fixture
def limits() -> Settings:
    return Settings()


def test_a_good_file_is_described_by_what_it_holds(tmp_path: Path, limits: Settings) -> None:
    path = write_wav(tmp_path / "tone.wav", sine(440.0, 1.5))
    info = inspect(path, limits)
    assert (info.format, info.subtype, info.sample_rate, info.channels, info.frames) == (
        "WAV",
        "FLOAT",
        48_000,
        2,
        72_000,
    )


@pytest.mark.parametrize(
    ("bad", "said"),
    [(np.nan, "a NaN sample"), (np.inf, "an infinite sample"), (3e38, "a sample of 3e+38")],
)
def test_the_first_bad_sample_is_named_by_frame_and_channel(
    tmp_path: Path, limits: Settings, bad: float, said: str
) -> None:
    audio = sine(440.0, 3.0, channels=3)
    frame = PROBE_BLOCK_FRAMES + 1234  # in the second block: the offset must be counted
    audio[2, frame] = bad
    audio[0, frame + 10] = bad  # a later one is not the first
    path = write_wav(tmp_path / "bad.wav", audio)
    with pytest.raises(NonFiniteAudio) as caught:
        inspect(path, limits)
    assert caught.value.code == "UNSUPPORTED_AUDIO"
    assert f"{said}" in caught.value.message
    assert f"at frame {frame}, channel 2 (both counted from 0)" in caught.value.message


@pytest.mark.parametrize("fill", [np.nan, 3e38, -np.inf])
def test_files_made_only_of_bad_samples_are_refused_at_frame_0(
    tmp_path: Path, limits: Settings, fill: float
) -> None:
    path = write_wav(tmp_path / "all.wav", np.full((2, 4800), fill, dtype=np.float32))
    with pytest.raises(NonFiniteAudio, match="at frame 0, channel 0"):
        inspect(path, limits)


def test_the_sample_bound_is_a_setting_and_inclusive(tmp_path: Path, limits: Settings) -> None:
    audio = np.full((1, 4800), 0.25, dtype=np.float32)
    audio[0, 100] = limits.max_sample_abs  # +60 dBFS: far over full scale, still accepted
    path = write_wav(tmp_path / "hot.wav", audio)
    assert inspect(path, limits).frames == 4800
    with pytest.raises(NonFiniteAudio, match=r"a sample of 1000 at frame 100, channel 0"):
        inspect(path, limits.model_copy(update={"max_sample_abs": 10.0}))


def test_first_bad_sample_goes_by_time_then_channel() -> None:
    block = np.zeros((3, 10), dtype=np.float32)
    assert first_bad_sample(block, 1.0) is None
    block[2, 4] = np.nan
    block[1, 4] = 2.0
    block[0, 7] = np.inf
    assert first_bad_sample(block, 1.0) == (4, 1)
    assert first_bad_sample(block, 5.0) == (4, 2)


def _truncated(source: Path, target: Path) -> Path:
    data = source.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    return target


@pytest.mark.parametrize(
    ("fmt", "subtype"), [("WAV", "FLOAT"), ("WAV", "PCM_16"), ("AIFF", "PCM_24")]
)
def test_a_truncated_file_is_refused_never_read_as_half_a_file(
    tmp_path: Path, limits: Settings, fmt: str, subtype: str
) -> None:
    """libsndfile reads what is there and reports that as the file's length, so without this
    check a half file went through with exit code 0."""
    whole = tmp_path / f"whole.{fmt.lower()}"
    sf.write(str(whole), sine(440.0, 1.0).T, 48_000, format=fmt, subtype=subtype)
    half = _truncated(whole, tmp_path / f"half.{fmt.lower()}")
    assert sf.info(str(half)).frames < 48_000  # what the check is about
    with pytest.raises(TruncatedAudio) as caught:
        inspect(half, limits)
    assert caught.value.code == "UNSUPPORTED_AUDIO"
    assert "truncated" in caught.value.message
    assert str(tmp_path) not in caught.value.message


def test_a_streamed_wav_of_unknown_length_is_taken_with_its_real_length(
    tmp_path: Path, limits: Settings
) -> None:
    """Pipes write 0xFFFFFFFF as the data size: that says "unknown", not "truncated"."""
    path = write_wav(tmp_path / "streamed.wav", sine(440.0, 0.5), subtype="PCM_16")
    data = bytearray(path.read_bytes())
    at = data.index(b"data")
    data[at + 4 : at + 8] = struct.pack("<I", 0xFFFFFFFF)
    data[4:8] = struct.pack("<I", 0xFFFFFFFF)
    path.write_bytes(bytes(data))
    assert inspect(path, limits).frames == 24_000


def test_mp3_length_is_the_decoded_one(tmp_path: Path, limits: Settings) -> None:
    path = tmp_path / "tone.mp3"
    sf.write(str(path), sine(440.0, 1.0).T, 48_000, format="MP3")
    decoded, _ = sf.read(str(path), dtype="float32")
    assert inspect(path, limits).frames == len(decoded)


def test_undecodable_or_empty_files_are_refused_without_the_server_path(
    tmp_path: Path, limits: Settings
) -> None:
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage" * 8)
    with pytest.raises(UndecodableAudio) as caught:
        inspect(junk, limits)
    assert caught.value.code == "UNSUPPORTED_AUDIO"
    assert str(tmp_path) not in caught.value.message
    empty = tmp_path / "empty.wav"
    sf.write(str(empty), np.zeros((0, 2), dtype=np.float32), 48_000)
    with pytest.raises(UndecodableAudio, match="no audio frames"):
        inspect(empty, limits)


def test_limits_are_checked_in_the_same_place(tmp_path: Path, limits: Settings) -> None:
    path = write_wav(tmp_path / "wide.wav", sine(440.0, 0.1, channels=3))
    with pytest.raises(UnsupportedAudio, match="3 channels; at most 2"):
        inspect(path, limits.model_copy(update={"max_channels": 2}))
    with pytest.raises(UnsupportedAudio, match=r"at most 0\.05 s"):
        inspect(path, limits.model_copy(update={"max_duration_s": 0.05}))
