"""What an audio file is, read from its header with libsndfile."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from jobs.errors import UnsupportedAudio


@dataclass(frozen=True, slots=True)
class AudioInfo:
    format: str
    subtype: str
    sample_rate: int
    channels: int
    frames: int


def probe(path: Path) -> AudioInfo:
    """Read the header; `UnsupportedAudio` if libsndfile cannot decode it or it holds nothing."""
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise UnsupportedAudio(f"not a decodable audio file: {exc}") from exc
    if info.samplerate <= 0 or info.channels <= 0:
        raise UnsupportedAudio("the file declares no sample rate or no channels")
    if info.frames <= 0:
        raise UnsupportedAudio("the file holds no audio frames")
    return AudioInfo(
        format=info.format,
        subtype=info.subtype or "",
        sample_rate=int(info.samplerate),
        channels=int(info.channels),
        frames=int(info.frames),
    )
