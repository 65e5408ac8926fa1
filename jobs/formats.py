"""Output containers and sample formats, and the libsndfile names they map to.

One table (`CONTAINERS`) says, per container, what it is called in libsndfile, which sample
formats it holds and which is the default, its file extensions and its media type. The
GraphQL `AudioFormat` enum, the CLI's `--format` and the output-extension lookup all read it;
anything not in it is refused with an `UnsupportedFormat` that lists what is.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from jobs.errors import BadInput, UnsupportedFormat


class AudioFormat(StrEnum):
    WAV = "WAV"
    FLAC = "FLAC"
    OGG = "OGG"
    MP3 = "MP3"
    AIFF = "AIFF"
    CAF = "CAF"
    W64 = "W64"


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


@dataclass(frozen=True, slots=True)
class Container:
    """One writable container. `lossy_subtype` is set for codecs that ignore the requested
    sample format (OGG is Vorbis, MP3 is MPEG layer III)."""

    subtypes: tuple[SampleFormat, ...]
    default: SampleFormat | None
    extensions: tuple[str, ...]
    media_type: str
    lossy_subtype: str = ""
    max_data_bytes: int | None = None
    """Largest sample data its 32-bit size fields can describe (None: no such limit)."""


_ALL = (SampleFormat.PCM_16, SampleFormat.PCM_24, SampleFormat.PCM_32, SampleFormat.FLOAT)

# 4 GiB, less room for the header chunks.
_SIZE_FIELD_LIMIT = 2**32 - 2**16

CONTAINERS: dict[AudioFormat, Container] = {
    AudioFormat.WAV: Container(
        _ALL, SampleFormat.FLOAT, ("wav",), "audio/wav", max_data_bytes=_SIZE_FIELD_LIMIT
    ),
    AudioFormat.FLAC: Container(
        (SampleFormat.PCM_16, SampleFormat.PCM_24), SampleFormat.PCM_24, ("flac",), "audio/flac"
    ),
    AudioFormat.OGG: Container((), None, ("ogg", "oga"), "audio/ogg", lossy_subtype="VORBIS"),
    AudioFormat.MP3: Container((), None, ("mp3",), "audio/mpeg", lossy_subtype="MPEG_LAYER_III"),
    AudioFormat.AIFF: Container(
        _ALL, SampleFormat.PCM_24, ("aiff", "aif"), "audio/aiff", max_data_bytes=_SIZE_FIELD_LIMIT
    ),
    AudioFormat.CAF: Container(_ALL, SampleFormat.FLOAT, ("caf",), "audio/x-caf"),
    # Sony Wave64: WAV's layout with 64-bit sizes, for outputs beyond WAV's 4 GiB.
    AudioFormat.W64: Container(_ALL, SampleFormat.FLOAT, ("w64",), "audio/x-w64"),
}

# Bits of a PCM sample format; its read-back values are multiples of 2^-(bits-1).
_PCM_BITS = {"PCM_16": 16, "PCM_24": 24, "PCM_32": 32}
SAMPLE_BYTES = {"PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4}
"""Bytes per sample of the subtypes stored raw."""


def containers_text() -> str:
    return ", ".join(f.value for f in CONTAINERS)


def audio_format(name: AudioFormat | str) -> AudioFormat:
    """The container called `name` (any case), or `UnsupportedFormat` listing the valid ones."""
    try:
        return AudioFormat(str(getattr(name, "value", name)).upper())
    except ValueError:
        raise UnsupportedFormat(
            f"unsupported output format {str(name)!r}: use one of {containers_text()}"
        ) from None


def format_for_extension(suffix: str) -> AudioFormat:
    """The container a file name ending in `suffix` (".flac", "FLAC") asks for; an unknown or
    missing extension is refused rather than silently written as WAV."""
    ext = suffix.lower().lstrip(".")
    for fmt, container in CONTAINERS.items():
        if ext in container.extensions:
            return fmt
    known = ", ".join(f".{e}" for c in CONTAINERS.values() for e in c.extensions)
    shown = f"extension {suffix!r}" if ext else "no extension"
    raise UnsupportedFormat(
        f"cannot tell the output format from {shown}: name the file with one of {known}, "
        f"or give the format ({containers_text()})"
    )


def output_format(fmt: AudioFormat | str, subtype: SampleFormat | str | None) -> OutputFormat:
    """Map a requested container and sample format onto libsndfile's names.

    Lossy containers ignore the sample format; a container without float samples (FLAC) is
    refused FLOAT rather than silently changed. No sample format means the container's default.

    >>> output_format("aiff", None).subtype
    'PCM_24'
    """
    container_format = audio_format(fmt)
    container = CONTAINERS[container_format]
    ext = container.extensions[0]
    if container.lossy_subtype:
        return OutputFormat(
            container_format.value, container.lossy_subtype, ext, container.media_type
        )
    wanted = str(getattr(subtype, "value", subtype) or container.default).upper()
    allowed = ", ".join(s.value for s in container.subtypes)
    if wanted not in {s.value for s in container.subtypes}:
        raise UnsupportedFormat(
            f"{container_format.value} cannot hold {wanted} samples; use one of {allowed}"
        )
    return OutputFormat(container_format.value, wanted, ext, container.media_type)


def sample_step(subtype: str) -> float:
    """Spacing of the values a PCM sample format can hold when read back as float (2^-15 for
    PCM_16); 0.0 for float and lossy formats, which have no fixed grid."""
    bits = _PCM_BITS.get(subtype.upper())
    return 0.0 if bits is None else 2.0 ** (1 - bits)


def max_frames(container: str, subtype: str, channels: int) -> int | None:
    """Most frames a `container` file of `subtype` samples can hold; None without a limit.
    libsndfile would write a WAV or AIFF past 4 GiB with wrong sizes in its header, a file
    players read as truncated: the writer stops there instead (W64 and CAF have no limit).

    >>> max_frames("WAV", "PCM_16", 2) < 2**30 <= max_frames("WAV", "PCM_16", 1)
    True
    """
    entry = CONTAINERS.get(audio_format(container))
    size = SAMPLE_BYTES.get(subtype.upper())
    if entry is None or entry.max_data_bytes is None or size is None:
        return None
    return entry.max_data_bytes // (size * max(channels, 1))


def past_size_limit(container: str, frames: int) -> BadInput:
    """The refusal of an output that would pass `container`'s size limit (`max_frames`)
    after `frames` frames, naming the containers that have none."""
    return BadInput(
        f"the output passes {container}'s 4 GiB size limit after {frames} frames: ask "
        "for W64 (or CAF or FLAC), which have none"
    )


def media_type(container: str) -> str:
    """Content-Type for a libsndfile container name, `application/octet-stream` if unknown."""
    for fmt, entry in CONTAINERS.items():
        if fmt.value == container.upper():
            return entry.media_type
    return "application/octet-stream"
