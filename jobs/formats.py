"""Output containers and sample formats, and the libsndfile names they map to."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from jobs.errors import UnsupportedFormat


class AudioFormat(StrEnum):
    WAV = "WAV"
    FLAC = "FLAC"
    OGG = "OGG"
    MP3 = "MP3"


class SampleFormat(StrEnum):
    PCM_16 = "PCM_16"
    PCM_24 = "PCM_24"
    PCM_32 = "PCM_32"
    FLOAT = "FLOAT"


@dataclass(frozen=True, slots=True)
class OutputFormat:
    """What soundfile is asked to write: container, subtype and file extension."""

    format: str
    subtype: str
    extension: str
    media_type: str


_SUBTYPES: dict[AudioFormat, tuple[SampleFormat, ...]] = {
    AudioFormat.WAV: (
        SampleFormat.PCM_16,
        SampleFormat.PCM_24,
        SampleFormat.PCM_32,
        SampleFormat.FLOAT,
    ),
    AudioFormat.FLAC: (SampleFormat.PCM_16, SampleFormat.PCM_24),
}
_MEDIA_TYPES = {
    "WAV": "audio/wav",
    "FLAC": "audio/flac",
    "OGG": "audio/ogg",
    "MP3": "audio/mpeg",
}
_EXTENSIONS = {"WAV": "wav", "FLAC": "flac", "OGG": "ogg", "MP3": "mp3"}


def output_format(fmt: AudioFormat | str, subtype: SampleFormat | str | None) -> OutputFormat:
    """Map a requested container and sample format onto libsndfile's names.

    Lossy containers ignore the sample format (OGG is Vorbis, MP3 is MPEG layer III); FLAC has
    no float samples, so FLAC + FLOAT is refused rather than silently changed.
    """
    fmt = AudioFormat(str(fmt).upper())
    if fmt is AudioFormat.OGG:
        return OutputFormat("OGG", "VORBIS", "ogg", _MEDIA_TYPES["OGG"])
    if fmt is AudioFormat.MP3:
        return OutputFormat("MP3", "MPEG_LAYER_III", "mp3", _MEDIA_TYPES["MP3"])
    sub = SampleFormat(
        str(
            subtype or SampleFormat.FLOAT
            if fmt is AudioFormat.WAV
            else subtype or SampleFormat.PCM_24
        ).upper()
    )
    if sub not in _SUBTYPES[fmt]:
        allowed = ", ".join(s.value for s in _SUBTYPES[fmt])
        raise UnsupportedFormat(
            f"{fmt.value} cannot hold {sub.value} samples; use one of {allowed}"
        )
    return OutputFormat(fmt.value, sub.value, _EXTENSIONS[fmt.value], _MEDIA_TYPES[fmt.value])


def media_type(container: str) -> str:
    """Content-Type for a libsndfile container name, `application/octet-stream` if unknown."""
    return _MEDIA_TYPES.get(container.upper(), "application/octet-stream")
