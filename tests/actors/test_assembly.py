"""An output assembled in place: parts written at their offsets, in any order, then the
header, give byte for byte the file libsndfile writes in one go."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from actors.assembly import (
    BYTE_ORDER,
    SAMPLE_BYTES,
    assembles,
    byte_order,
    finish,
    part_writer,
)
from actors.runner import Encoder
from jobs.errors import BadInput, ProcessingFailed

RATE = 8_000
CASES = [
    (container, subtype)
    for container, subtype in itertools.product(BYTE_ORDER, SAMPLE_BYTES)
    if assembles(container, subtype)
]


def _signal(frames: int, channels: int) -> np.ndarray:
    rng = np.random.default_rng(frames + channels)
    # Past full scale on purpose: PCM parts clip as the whole file's encoder does.
    return (0.6 * rng.standard_normal((channels, frames))).astype(np.float32)


def _assemble(path: Path, container: str, subtype: str, audio: np.ndarray, cuts: list[int]) -> None:
    channels, frames = audio.shape
    bounds = [0, *cuts, frames]
    pieces = list(itertools.pairwise(bounds))
    for start, end in reversed(pieces):  # any order: each part has its own bytes
        with (
            part_writer(path, container, subtype, RATE, channels, start) as window,
            Encoder(
                window, "RAW", subtype, RATE, channels, 1e3, False, byte_order(container)
            ) as out,
        ):
            for at in range(start, end, 1000):  # in blocks, as a render writes
                out.write(np.ascontiguousarray(audio[:, at : min(at + 1000, end)]))
    finish(path, container, subtype, RATE, channels, frames)


def test_every_raw_container_assembles_in_place() -> None:
    assert {c for c, _ in CASES} == set(BYTE_ORDER)
    assert ("WAV", "PCM_16") in CASES and ("W64", "FLOAT") in CASES


@pytest.mark.parametrize(("container", "subtype"), CASES)
@pytest.mark.parametrize("channels", [1, 3])
def test_parts_in_place_give_the_file_written_in_one_go(
    tmp_path: Path, container: str, subtype: str, channels: int
) -> None:
    audio = _signal(12_345, channels)
    whole = tmp_path / "whole"
    with Encoder(whole, container, subtype, RATE, channels, 1e3, False) as out:
        out.write(audio)
    assembled = tmp_path / "assembled"
    _assemble(assembled, container, subtype, audio, [4_000, 4_001, 9_999])
    assert assembled.read_bytes() == whole.read_bytes()
    assert sf.info(str(assembled)).frames == 12_345


@pytest.mark.parametrize(
    ("container", "subtype"),
    [("WAV", "FLOAT"), ("AIFF", "FLOAT"), ("FLAC", "PCM_16"), ("MP3", "MPEG_LAYER_III")],
)
def test_outputs_whose_header_or_data_depend_on_the_samples_are_stitched(
    container: str, subtype: str
) -> None:
    """A float WAV, AIFF or CAF carries its samples' peaks in a PEAK chunk; FLAC and MP3 are
    coded streams, not raw samples."""
    assert not assembles(container, subtype)


def test_a_rerun_part_leaves_no_extra_bytes(tmp_path: Path) -> None:
    audio = _signal(5_000, 2)
    path = tmp_path / "out.wav"
    path.write_bytes(bytes(100_000))  # a longer file left by an earlier attempt
    _assemble(path, "WAV", "PCM_16", audio, [2_500])
    back, rate = sf.read(str(path), dtype="int16")
    assert rate == RATE and back.shape == (5_000, 2)
    assert path.stat().st_size == 44 + 5_000 * 4


def test_a_missing_part_fails_the_stitch(tmp_path: Path) -> None:
    audio = _signal(5_000, 2)
    path = tmp_path / "out.wav"
    with (
        part_writer(path, "WAV", "PCM_16", RATE, 2, 0) as window,
        Encoder(window, "RAW", "PCM_16", RATE, 2, 1e3, False, "LITTLE") as out,
    ):
        out.write(audio[:, :2_500])
    with pytest.raises(ProcessingFailed, match="part is missing"):
        finish(path, "WAV", "PCM_16", RATE, 2, 5_000)


def test_a_wav_past_4_gib_is_refused_naming_w64(tmp_path: Path) -> None:
    path = tmp_path / "out.wav"
    path.write_bytes(b"")
    with pytest.raises(BadInput, match="W64"):
        finish(path, "WAV", "PCM_16", RATE, 2, 2**30)
