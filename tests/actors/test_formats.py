"""Every output container the API offers, from every common input container, with chains that
change length and rate: what `process_file` reports is what the file really is."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from actors.impulses import uncached_impulses
from actors.runner import process_file
from jobs.effects import parse_chain
from jobs.formats import output_format
from tests.conftest import sine

OUTPUTS = [
    ("WAV", "PCM_16"),
    ("WAV", "PCM_24"),
    ("WAV", "FLOAT"),
    ("FLAC", "PCM_16"),
    ("FLAC", "PCM_24"),
    ("OGG", None),
    ("MP3", None),
    ("AIFF", None),
    ("AIFF", "FLOAT"),
    ("CAF", "PCM_24"),
    ("W64", None),
]


@pytest.mark.parametrize(("container", "subtype"), OUTPUTS)
def test_output_containers_report_what_they_hold(
    tmp_path: Path, container: str, subtype: str | None
) -> None:
    src = tmp_path / "in.wav"
    sf.write(str(src), sine(440.0, 1.0, channels=2).T, 48_000, subtype="FLOAT")
    calls = parse_chain(
        [
            {"resample": {"rate": 44_100}},
            {"trim": {"startS": 0.25}},
            {"channels": {"mode": "MONO"}},
        ],
        48_000,
    )
    out = output_format(container, subtype)
    dst = tmp_path / f"out.{out.extension}"
    info = process_file(src, dst, calls, out.format, out.subtype, 8192, uncached_impulses({}))
    real = sf.info(str(dst))
    assert (info.sample_rate, info.channels) == (44_100, 1)
    assert (real.samplerate, real.channels) == (info.sample_rate, info.channels)
    assert (real.format, real.subtype) == (out.format, out.subtype)
    # 0.75 s left at 44.1 kHz; lossy codecs may pad their last frame.
    assert abs(info.frames - 33_075) <= 2
    if container not in ("OGG", "MP3"):
        assert real.frames == info.frames
        data, _ = sf.read(str(dst), dtype="float32")
        assert 0.4 < float(np.max(np.abs(data))) < 0.6  # the -6 dBFS tone survived
    else:
        assert abs(real.frames - info.frames) <= 2048


@pytest.mark.parametrize(("container", "subtype"), [("FLAC", "PCM_24"), ("OGG", "VORBIS")])
def test_compressed_inputs_decode(tmp_path: Path, container: str, subtype: str) -> None:
    src = tmp_path / f"in.{container.lower()}"
    sf.write(str(src), sine(440.0, 0.5).T, 48_000, format=container, subtype=subtype)
    dst = tmp_path / "out.wav"
    calls = parse_chain([{"reverb": {"impulse": "room", "mix": 1.0}}], 48_000)
    info = process_file(src, dst, calls, "WAV", "FLOAT", 4096, uncached_impulses({}))
    assert info.frames > sf.info(str(src)).frames  # the reverb tail lengthened it
    assert sf.info(str(dst)).frames == info.frames
