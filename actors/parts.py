"""One long file rendered in parts, minus Ray: plan the split, render one part, stitch them.

Each part is a segment of the input (`dsp.segments`) rendered by whichever actor takes it,
from its own copy of the input read at the segment's frames (seeking, so it decodes only its
range and pre-roll), into a W64 part file; the stitch writes the parts, in order, into the
job's output. A part's frames are those of the unsplit render (within the bounds
`dsp.segments` documents), so the output is the one `process_file` would have written.

Where the output's samples are stored as they are converted one by one (PCM or float in a
container libsndfile writes through its PCM code: `RAW_CONTAINERS`), a part is already
encoded in the output's subtype, checked and clipped as `Encoder` does: libsndfile converts
each float to an integer alone, so encoding in parts gives the same samples as encoding the
whole. The stitch then only copies integers (no conversion, no clipping) and the encoding
runs on all actors at once instead of after them. Other outputs (FLAC, whose encoder rounds
its own way, and the lossy ones) get float32 parts that the stitch encodes. Where the store is
a folder, such an output needs no stitch at all: the parts write their samples into the
output itself (`render_part(..., assembled=True)`, `actors.assembly`).

>>> plan = plan_parts(Path("in.wav"), calls, impulses, "PCM_16", 300.0)      # doctest: +SKIP
>>> render_part(Path("in.wav"), Path("p0.w64"), calls, "PCM_16", 65536, impulses, plan, 0)
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from numpy.typing import NDArray

from actors import assembly
from actors.binding import Impulses
from actors.runner import (
    _DECODE_ERRORS,
    Encoder,
    LoudnessTrim,
    RenderInfo,
    StreamMeter,
    chain_errors,
    job_chain,
    loudness_reason,
    open_input,
)
from dsp.chain import Chain, Stopped
from dsp.normalize import Level
from dsp.segments import (
    Segment,
    SegmentPlan,
    measure_segment,
    meter_preroll,
    plan_segments,
    render_segment,
    settle,
)
from jobs.effects import EffectCall
from jobs.errors import JobCancelled, ProcessingFailed, UnsupportedAudio
from jobs.formats import max_frames, past_size_limit
from jobs.probe import check_block
from jobs.settings import MAX_SAMPLE_ABS

EXACT_SEEK = frozenset({"WAV", "WAVEX", "W64", "RF64", "AIFF", "CAF", "AU", "FLAC"})
"""Input formats whose decoder, seeked to frame n, gives the samples a read from the start
gives there. MP3 and Ogg decoders do not (see `jobs.decoding`): those inputs run unsplit."""
PART_CONTAINER = "W64"
"""Parts have no 4 GiB limit."""
RAW_CONTAINERS = frozenset({"WAV", "WAVEX", "W64", "RF64", "AIFF", "CAF", "AU"})
"""Containers whose PCM and float samples libsndfile converts one at a time (its `pcm.c`
and `float32.c`), the same way in every one of them."""
RAW_DTYPES = {
    "PCM_S8": "int16",
    "PCM_U8": "int16",
    "PCM_16": "int16",
    "PCM_24": "int32",
    "PCM_32": "int32",
    "FLOAT": "float32",
    "DOUBLE": "float64",
}
"""The sample type that reads a part of each subtype back and writes it again unchanged
(8 and 24 bits are shifted into and back out of the wider integer, exactly)."""


def part_subtype(out_format: str, out_subtype: str) -> str:
    """The subtype parts of an output are written in: the output's own where the stitch can
    copy samples, float32 otherwise."""
    subtype = out_subtype.upper()
    if out_format.upper() in RAW_CONTAINERS and subtype in RAW_DTYPES:
        return subtype
    return "FLOAT"


def _chain(
    calls: Sequence[EffectCall],
    rate: int,
    impulses: Impulses,
    subtype: str,
    levels: Sequence[Level] = (),
    trim: LoudnessTrim | None = None,
    album_lufs: float | None = None,
) -> Chain:
    """The job's chain as `process_file` builds it, its first two-pass effects settled on
    `levels` (merged from every part)."""
    chain = job_chain(calls, rate, impulses, subtype, trim, album_lufs)
    with chain_errors():
        settle(chain, levels)
    return chain


def plan_parts(
    in_path: Path,
    calls: Sequence[EffectCall],
    impulses: Impulses,
    out_subtype: str,
    segment_seconds: float,
    album_lufs: float | None = None,
) -> SegmentPlan:
    """How the job is split (one segment and a reason when it is not), and how many two-pass
    effects its parts measure first (`measure_part`)."""
    with open_input(in_path) as reader:
        rate, channels, total, kind = (
            reader.samplerate,
            reader.channels,
            reader.frames,
            reader.format,
        )
    chain = _chain(calls, rate, impulses, out_subtype, album_lufs=album_lufs)
    chain.configure(rate, channels)
    plan = plan_segments(chain, rate, total, round(segment_seconds * rate))
    if len(plan.segments) > 1 and kind not in EXACT_SEEK:
        whole = (Segment(0, 0, total, True),)
        why = f"not split: a {kind} decoder started mid-file gives other samples"
        return SegmentPlan(whole, 0, 0, why)
    return plan


def _reader(
    in_path: Path,
    segment: Segment,
    rate: int,
    total: int,
    block_frames: int,
    max_sample_abs: float,
    meter: StreamMeter | None = None,
) -> Callable[[int, int], Iterator[NDArray[np.float32]]]:
    """`read(first, stop)` for `render_segment`: the input's frames [first, stop), seeked to
    and checked as `process_file` checks them; `meter` measures the segment's own frames
    (warmed on the ones before)."""

    settling = meter_preroll(rate) if meter is not None else 0

    def read(first: int, stop: int) -> Iterator[NDArray[np.float32]]:
        with sf.SoundFile(str(in_path)) as reader:
            reader.seek(first)
            at = first
            while at < stop:
                block = reader.read(min(block_frames, stop - at), dtype="float32", always_2d=True)
                if block.shape[0] == 0:
                    raise UnsupportedAudio(f"input data ends at frame {at} of {total}")
                block = np.ascontiguousarray(block.T)
                check_block(block, at, max_sample_abs)
                n = block.shape[1]
                if meter is not None:
                    lo = min(max(segment.start - at, 0), n)
                    hi = n if segment.last else max(min(segment.end - at, n), lo)
                    # Only the frames the meter needs to settle: the rest of the pre-roll
                    # settles the effects, not the meter.
                    settle_from = min(max(segment.start - settling - at, 0), lo)
                    if lo > settle_from:
                        meter.warm(np.ascontiguousarray(block[:, settle_from:lo]), segment.step)
                    if hi > lo:
                        meter.add(np.ascontiguousarray(block[:, lo:hi]))
                at += n
                yield block

    return read


def measure_part(
    in_path: Path,
    calls: Sequence[EffectCall],
    out_subtype: str,
    block_frames: int,
    impulses: Impulses,
    plan: SegmentPlan,
    index: int,
    levels: Sequence[Level] = (),
    progress: Callable[[float], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    max_sample_abs: float = MAX_SAMPLE_ABS,
    album_lufs: float | None = None,
) -> Level:
    """What the next two-pass effect (normalize, loudness) measures of segment `index`, the
    ones before it settled on `levels`: phase `len(levels)` of `plan.measures`. The parts'
    measurements, merged in order (`dsp.segments.merged`), are the whole stream's."""
    with open_input(in_path) as probe:
        rate, channels, total = probe.samplerate, probe.channels, probe.frames
    chain = _chain(calls, rate, impulses, out_subtype, levels, album_lufs=album_lufs)
    segment = plan.segments[index]
    read = _reader(in_path, segment, rate, total, block_frames, max_sample_abs)
    try:
        return measure_segment(
            chain, read, plan, segment, rate, channels, total, progress, should_stop
        )
    except Stopped as exc:
        raise JobCancelled("stopped on request") from exc
    except _DECODE_ERRORS as exc:
        raise ProcessingFailed(f"processing failed: {exc}") from exc


@dataclass(frozen=True, slots=True)
class RenderedPart:
    """A part's frames, and the measurement of its input range and of its output (to merge,
    in order, with the other parts': `StreamMeter.merge`)."""

    frames: int
    input_meter: StreamMeter
    output_meter: StreamMeter
    loudness_reason: str = ""


def render_part(
    in_path: Path,
    part_path: Path,
    calls: Sequence[EffectCall],
    out_subtype: str,
    block_frames: int,
    impulses: Impulses,
    plan: SegmentPlan,
    index: int,
    progress: Callable[[float], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    max_sample_abs: float = MAX_SAMPLE_ABS,
    levels: Sequence[Level] = (),
    trim: LoudnessTrim | None = None,
    album_lufs: float | None = None,
    out_format: str = "",
    effect_seconds: list[float] | None = None,
    assembled: bool = False,
) -> RenderedPart:
    """Render segment `index` of `plan` into `part_path` (W64 in `part_subtype`) and meter
    its input and output as `process_file` would (PCM outputs metered clipped, as encoded).
    `assembled`: `part_path` is the output itself, assembled in place (`actors.assembly`:
    `out_format` must be one it `assembles`), and the part writes its samples there.
    The chain's two-pass effects are settled on `levels` (`measure_part`, every phase);
    `trim`, `album_lufs` and `effect_seconds` are `process_file`'s. Raises what
    `process_file` raises for the same input range."""
    with open_input(in_path) as probe:
        rate, channels, total = probe.samplerate, probe.channels, probe.frames
    chain = _chain(calls, rate, impulses, out_subtype, levels, trim, album_lufs)
    chain.seconds = effect_seconds
    out_rate, out_channels = chain.configure(rate, channels)
    segment = plan.segments[index]
    in_meter = StreamMeter(rate, channels)
    out_meter = StreamMeter(out_rate, out_channels)
    clip = out_subtype.upper().startswith("PCM")

    read = _reader(in_path, segment, rate, total, block_frames, max_sample_abs, in_meter)

    # The output's pre-roll (as long as the input's: split effects keep time) settles the
    # meter on its last `meter_preroll` frames only.
    pre_frames = segment.start - max(segment.start - plan.preroll, 0)
    skip = max(pre_frames - meter_preroll(out_rate), 0)
    warmed = 0

    def warm(block: NDArray[np.float32]) -> None:
        nonlocal warmed
        lo, warmed = warmed, warmed + block.shape[1]
        if warmed <= skip:
            return
        tail = np.ascontiguousarray(block[:, max(skip - lo, 0) :])
        out_meter.warm(np.clip(tail, -1.0, 1.0) if clip else tail, segment.step)

    subtype = out_subtype if assembled else part_subtype(out_format, out_subtype)
    bound = max_sample_abs if subtype in ("FLOAT", "DOUBLE") else math.inf
    frames = 0
    try:
        with ExitStack() as stack:
            if assembled:
                # Split effects keep time: the part's first output frame is its segment's.
                at = assembly.part_writer(
                    part_path, out_format, subtype, out_rate, out_channels, segment.start
                )
                target: Path | io.RawIOBase = stack.enter_context(at)
                container, endian = "RAW", assembly.byte_order(out_format)
            else:
                target, container, endian = part_path, PART_CONTAINER, "FILE"
            writer = stack.enter_context(
                Encoder(target, container, subtype, out_rate, out_channels, bound, False, endian)
            )

            def sink(block: NDArray[np.float32]) -> None:
                nonlocal frames
                writer.write(block)
                out_meter.add(np.clip(block, -1.0, 1.0) if clip else block)
                frames += block.shape[1]

            render_segment(
                chain, read, plan, segment, rate, channels, total, sink, progress, should_stop,
                before=warm,
            )  # fmt: skip
    except Stopped as exc:
        raise JobCancelled("stopped on request") from exc
    except _DECODE_ERRORS as exc:
        raise ProcessingFailed(f"processing failed: {exc}") from exc
    return RenderedPart(frames, in_meter, out_meter, loudness_reason(chain))


def stitch(
    part_paths: Sequence[Path],
    out_path: Path,
    out_format: str,
    out_subtype: str,
    block_frames: int,
    max_sample_abs: float = MAX_SAMPLE_ABS,
) -> int:
    """Write the parts, in order, into `out_path` as `process_file` encodes a chain's output
    (same checks and clipping); returns the frames. The parts were metered as rendered."""
    with sf.SoundFile(str(part_paths[0])) as first:
        rate, channels, stored = first.samplerate, first.channels, first.subtype
    if stored == out_subtype.upper() == part_subtype(out_format, out_subtype):
        return _copy_samples(part_paths, out_path, out_format, out_subtype, block_frames)
    try:
        with Encoder(
            out_path, out_format, out_subtype, rate, channels, max_sample_abs, metered=False
        ) as out:
            for path in part_paths:
                with sf.SoundFile(str(path)) as part:
                    for block in part.blocks(block_frames, dtype="float32", always_2d=True):
                        out.write(np.ascontiguousarray(block.T))
    except _DECODE_ERRORS as exc:
        raise ProcessingFailed(f"stitching the parts failed: {exc}") from exc
    return out.frames


def _copy_samples(
    part_paths: Sequence[Path], out_path: Path, out_format: str, out_subtype: str, block: int
) -> int:
    """Stitch parts already encoded in the output's subtype: their samples, unchanged."""
    dtype = RAW_DTYPES[out_subtype.upper()]
    infos = [sf.info(str(path)) for path in part_paths]
    total: int = sum(info.frames for info in infos)
    channels = infos[0].channels
    limit = max_frames(out_format, out_subtype, channels)
    if limit is not None and total > limit:
        raise past_size_limit(out_format, limit)
    try:
        with sf.SoundFile(
            str(out_path),
            "w",
            samplerate=infos[0].samplerate,
            channels=channels,
            format=out_format,
            subtype=out_subtype,
        ) as out:
            buffer = np.empty((block, channels), dtype=dtype)
            for path in part_paths:
                with sf.SoundFile(str(path)) as part:
                    while n := part.buffer_read_into(buffer, dtype=dtype):
                        out.write(buffer[:n])
    except _DECODE_ERRORS as exc:
        raise ProcessingFailed(f"stitching the parts failed: {exc}") from exc
    return total


def joined(
    parts: Sequence[RenderedPart], out_format: str, out_subtype: str, frames: int
) -> RenderInfo:
    """What the stitched output is, from its parts' measurements merged in order."""
    first = parts[0]
    input_meter, output_meter = first.input_meter, first.output_meter
    for part in parts[1:]:
        input_meter.merge(part.input_meter)
        output_meter.merge(part.output_meter)
    return RenderInfo(
        out_format,
        out_subtype,
        output_meter.sample_rate,
        output_meter.meter.channels,
        frames,
        input_analysis=input_meter.analysis(),
        output_analysis=output_meter.analysis(),
        loudness_reason=first.loudness_reason,
    )
