"""The output-format table: every container is offered everywhere, and nothing else is."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from jobs.errors import UnsupportedFormat
from jobs.formats import (
    CONTAINERS,
    AudioFormat,
    format_for_extension,
    max_frames,
    media_type,
    output_format,
    sample_step,
)


@pytest.mark.parametrize("fmt", list(AudioFormat))
def test_every_container_and_subtype_is_writable_by_libsndfile(tmp_path: Path, fmt: str) -> None:
    container = CONTAINERS[AudioFormat(fmt)]
    assert container.extensions and container.media_type.startswith("audio/")
    subtypes = [s.value for s in container.subtypes] or [None]
    x = (0.5 * np.sin(np.arange(4800) / 10.0)).astype(np.float32)[:, None].repeat(2, axis=1)
    for subtype in subtypes:
        out = output_format(fmt.lower(), subtype)
        assert format_for_extension(f".{out.extension}") is AudioFormat(fmt)
        assert media_type(out.format) == container.media_type
        path = tmp_path / f"x.{out.extension}"
        sf.write(str(path), x, 48_000, format=out.format, subtype=out.subtype)
        info = sf.info(str(path))
        assert (info.format, info.subtype, info.channels) == (out.format, out.subtype, 2)
        if not container.lossy_subtype:
            assert info.frames == 4800
            back, _ = sf.read(str(path), dtype="float32")
            np.testing.assert_allclose(back, x, atol=2.0**-15)


@pytest.mark.parametrize(
    ("fmt", "subtype", "expected"),
    [
        ("WAV", None, ("WAV", "FLOAT", "wav")),
        ("FLAC", None, ("FLAC", "PCM_24", "flac")),
        ("aiff", None, ("AIFF", "PCM_24", "aiff")),
        ("CAF", "pcm_16", ("CAF", "PCM_16", "caf")),
        ("W64", None, ("W64", "FLOAT", "w64")),
        ("OGG", "PCM_16", ("OGG", "VORBIS", "ogg")),
    ],
)
def test_defaults_and_case(fmt: str, subtype: str | None, expected: tuple[str, ...]) -> None:
    out = output_format(fmt, subtype)
    assert (out.format, out.subtype, out.extension) == expected


@pytest.mark.parametrize(
    ("fmt", "subtype", "words"),
    [
        ("AIFC", None, "use one of WAV, FLAC, OGG, MP3, AIFF, CAF, W64"),
        ("FLAC", "FLOAT", "use one of PCM_16, PCM_24"),
        ("W64", "PCM_8", "W64 cannot hold PCM_8"),
    ],
)
def test_unsupported_is_refused_with_the_valid_choices(
    fmt: str, subtype: str | None, words: str
) -> None:
    with pytest.raises(UnsupportedFormat, match=words) as caught:
        output_format(fmt, subtype)
    assert caught.value.code == "UNSUPPORTED_FORMAT"


def test_extensions() -> None:
    assert format_for_extension(".AIF") is AudioFormat.AIFF
    for bad in (".xyz", "", ".wav.gz"):
        with pytest.raises(UnsupportedFormat, match="cannot tell the output format"):
            format_for_extension(bad)


def test_sample_steps() -> None:
    assert sample_step("PCM_16") == 2.0**-15
    assert sample_step("pcm_24") == 2.0**-23
    assert sample_step("FLOAT") == sample_step("VORBIS") == 0.0


def test_size_limits_of_32_bit_containers() -> None:
    four_gib = 2**32
    for fmt in ("WAV", "AIFF"):
        frames = max_frames(fmt, "FLOAT", 2)
        assert frames is not None and four_gib - 2**17 < frames * 8 < four_gib
        assert max_frames(fmt, "PCM_24", 3) == max_frames(fmt, "PCM_24", 1) // 3  # type: ignore[operator]
    for fmt, subtype in (("W64", "FLOAT"), ("CAF", "PCM_16"), ("FLAC", "PCM_24"), ("MP3", "X")):
        assert max_frames(fmt, subtype, 8) is None
