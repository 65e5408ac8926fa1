"""What an audio file is, and whether the engine takes it: the one check every input passes.

Uploads (`graph_api.uploads`) and the CLI (`audio-engine process`) call `inspect`; the actors
check each block they read again with `check_block`, for files that reached storage another way
(stored before this check existed, or copied in by hand).

`inspect` decodes the whole file once, in blocks read as the actors read them (`jobs.decoding`:
the samples of one whole-file read, MP3 included), and refuses with `UnsupportedAudio` (code
`UNSUPPORTED_AUDIO`):
- what libsndfile cannot decode, or what holds no frames;
- a file whose data ends before the frame count its header declares (a truncated WAV, FLAC...):
  it is refused, never processed as half a file. MP3 headers only estimate their length, so an
  MP3 is taken with the count its decoding gives. The recorded count is always the decoded one;
- a sample that is NaN, infinite, or beyond +-`Settings.max_sample_abs` (the message names its
  frame and channel, both counted from 0);
- anything over the channel, sample-rate or duration limits of the settings.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from numpy.typing import NDArray

from jobs.decoding import ContinuousReader, read_blocks
from jobs.errors import UnsupportedAudio
from jobs.settings import Settings

_DECODE_ERRORS = (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError)
ESTIMATED_LENGTH = frozenset({"MPEG"})
"""Containers whose header frame count is only an estimate."""
PROBE_BLOCK_FRAMES = 65536


class UndecodableAudio(UnsupportedAudio):
    """libsndfile cannot read the file, or it holds no audio."""


class TruncatedAudio(UnsupportedAudio):
    """The data ends before the frame count the header declares."""


class NonFiniteAudio(UnsupportedAudio):
    """A sample is NaN, infinite, or so large no audio could mean it."""


@dataclass(frozen=True, slots=True)
class AudioInfo:
    format: str
    subtype: str
    sample_rate: int
    channels: int
    frames: int


def probe(path: Path) -> AudioInfo:
    """The header alone (no decoding): `UndecodableAudio` if libsndfile cannot open it or it
    holds nothing. Callers that accept a file use `inspect`, which decodes it."""
    if not path.is_file():
        raise UndecodableAudio(f"no such file: {path.name}")
    try:
        info = sf.info(str(path))
    except _DECODE_ERRORS as exc:
        raise UndecodableAudio(f"not a decodable audio file: {_why(exc)}") from None
    if info.samplerate <= 0 or info.channels <= 0:
        raise UndecodableAudio("the file declares no sample rate or no channels")
    if info.frames <= 0:
        raise UndecodableAudio("the file holds no audio frames")
    return AudioInfo(
        format=info.format,
        subtype=info.subtype or "",
        sample_rate=int(info.samplerate),
        channels=int(info.channels),
        frames=int(info.frames),
    )


def inspect(path: Path, settings: Settings) -> AudioInfo:
    """Decode `path` once and return what it really holds, or raise `UnsupportedAudio` saying
    why the engine refuses it (see the module docstring).

    >>> inspect(Path("take.wav"), Settings()).frames   # doctest: +SKIP
    96000
    """
    declared = probe(path)
    check_limits(declared, settings)
    frames = _decoded_frames(path, declared, settings.max_sample_abs)
    if frames == 0:
        raise UndecodableAudio("the file holds no audio frames")
    if frames != declared.frames and declared.format not in ESTIMATED_LENGTH:
        raise TruncatedAudio(
            f"the header declares {declared.frames} frames but the data holds {frames}: "
            "the file is truncated or damaged"
        )
    info = AudioInfo(
        declared.format, declared.subtype, declared.sample_rate, declared.channels, frames
    )
    check_limits(info, settings)
    return info


def check_limits(info: AudioInfo, settings: Settings) -> None:
    """`UnsupportedAudio` naming the limit `info` breaks (channels, sample rate, duration)."""
    if info.channels > settings.max_channels:
        raise UnsupportedAudio(
            f"the file has {info.channels} channels; at most {settings.max_channels} are accepted"
        )
    if not settings.min_sample_rate <= info.sample_rate <= settings.max_sample_rate:
        raise UnsupportedAudio(
            f"the sample rate is {info.sample_rate} Hz; accepted are "
            f"{settings.min_sample_rate} to {settings.max_sample_rate} Hz"
        )
    seconds = info.frames / info.sample_rate
    if seconds > settings.max_duration_s:
        raise UnsupportedAudio(
            f"the file lasts {seconds:.1f} s; at most {settings.max_duration_s:g} s are accepted"
        )


def first_bad_sample(block: NDArray[np.floating], max_abs: float) -> tuple[int, int] | None:
    """(frame, channel) of the first sample of a (channels, frames) block that is NaN,
    infinite or beyond +-`max_abs`, in time order; None if every sample is fine."""
    if block.size == 0:
        return None
    # The common case in two passes without temporaries: max and min are NaN if any sample is.
    high, low = float(block.max()), float(block.min())
    if math.isfinite(high) and math.isfinite(low) and -max_abs <= low and high <= max_abs:
        return None
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(block) | (np.abs(block) > max_abs)
    if not bad.any():
        return None
    frame = int(np.flatnonzero(bad.any(axis=0))[0])
    channel = int(np.flatnonzero(bad[:, frame])[0])
    return frame, channel


def check_block(
    block: NDArray[np.floating], first_frame: int, max_abs: float, what: str = "the input"
) -> None:
    """`NonFiniteAudio` naming the first bad sample of a (channels, frames) block that starts
    at frame `first_frame` of the stream (`max_abs` may be infinite: only NaN and infinity)."""
    found = first_bad_sample(block, max_abs)
    if found is None:
        return
    frame, channel = found
    bound = f"finite and within +-{max_abs:g}" if math.isfinite(max_abs) else "finite"
    raise NonFiniteAudio(
        f"{what} has {_describe(float(block[channel, frame]))} at frame {first_frame + frame}, "
        f"channel {channel} (both counted from 0); audio samples must be {bound}"
    )


def _decoded_frames(path: Path, declared: AudioInfo, max_abs: float) -> int:
    frames = 0
    try:
        with ContinuousReader(path) as reader:
            check_data_chunk(reader)
            for block in read_blocks(reader, PROBE_BLOCK_FRAMES):
                check_block(block, frames, max_abs, "the file")
                frames += block.shape[1]
    except _DECODE_ERRORS as exc:
        if 0 < frames < declared.frames:
            raise TruncatedAudio(
                f"the header declares {declared.frames} frames but decoding breaks after "
                f"{frames}: the file is truncated or damaged"
            ) from None
        raise UndecodableAudio(f"the audio data cannot be decoded: {_why(exc)}") from None
    return frames


# libsndfile's parser log, for a WAV/AIFF/W64 chunk longer than the file: "data : 384000
# (should be 191956)". It then reads only what is there and reports that many frames.
_SHORT_CHUNK = re.compile(r"^\s*(?:data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
_UNKNOWN_LENGTH = (0, 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF)  # streamed files: "length not known"


def check_data_chunk(reader: sf.SoundFile) -> None:
    """`TruncatedAudio` when the header's data chunk is longer than the file holds."""
    found = _SHORT_CHUNK.search(reader.extra_info)
    if found is None:
        return
    declared, present = int(found[1]), int(found[2])
    if declared in _UNKNOWN_LENGTH or declared <= present:
        return
    raise TruncatedAudio(
        f"the header declares {declared} bytes of audio data but the file holds only {present} "
        f"({reader.frames} frames): the file is truncated"
    )


def _describe(value: float) -> str:
    if math.isnan(value):
        return "a NaN sample"
    if math.isinf(value):
        return f"an infinite sample ({value})"
    return f"a sample of {value:g}"


def _why(exc: BaseException) -> str:
    """libsndfile's reason without the file's path: users learn what is wrong with the
    audio, never where the server keeps it."""
    if isinstance(exc, sf.LibsndfileError):
        return str(exc.error_string)
    text = str(exc)
    return text.split(": ", 1)[1] if text.startswith("Error opening") and ": " in text else text
