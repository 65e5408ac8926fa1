"""One long file rendered in parts, minus Ray: plan the split, render one part, stitch them.

Each part is a segment of the input (`dsp.segments`) rendered by whichever actor takes it,
from its own copy of the input read at the segment's frames (seeking, so it decodes only its
range and pre-roll), into a float32 W64 part file; the stitch encodes the parts, in order,
into the job's output. A part's frames are those of the unsplit render (within the bounds
`dsp.segments` documents), so the output is the one `process_file` would have written.

>>> plan = plan_parts(Path("in.wav"), calls, impulses, "PCM_16", 300.0)      # doctest: +SKIP
>>> render_part(Path("in.wav"), Path("p0.w64"), calls, "PCM_16", 65536, impulses, plan, 0)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from numpy.typing import NDArray

from actors.binding import Impulses, build_chain
from actors.runner import _DECODE_ERRORS, Encoder, RenderInfo, StreamMeter, open_input
from dsp.chain import Chain, Stopped
from dsp.segments import Segment, SegmentPlan, plan_segments, render_segment
from jobs.effects import EffectCall
from jobs.errors import JobCancelled, ProcessingFailed, UnsupportedAudio
from jobs.formats import sample_step
from jobs.probe import check_block
from jobs.settings import MAX_SAMPLE_ABS

EXACT_SEEK = frozenset({"WAV", "WAVEX", "W64", "RF64", "AIFF", "CAF", "AU", "FLAC"})
"""Input formats whose decoder, seeked to frame n, gives the samples a read from the start
gives there. MP3 and Ogg decoders do not (see `jobs.decoding`): those inputs run unsplit."""
PART_FORMAT = ("W64", "FLOAT")
"""Parts hold the chain's float32 output as is (no clipping or rounding before the stitch)
and have no 4 GiB limit."""


def _chain(calls: Sequence[EffectCall], rate: int, impulses: Impulses, subtype: str) -> Chain:
    try:
        return build_chain(calls, rate, impulses, sample_step(subtype))
    except ValueError as exc:
        raise ProcessingFailed(f"invalid effect chain for this input: {exc}") from exc


def plan_parts(
    in_path: Path,
    calls: Sequence[EffectCall],
    impulses: Impulses,
    out_subtype: str,
    segment_seconds: float,
) -> SegmentPlan:
    """How the job is split (one segment and a reason when it is not)."""
    with open_input(in_path) as reader:
        rate, channels, total, kind = (
            reader.samplerate,
            reader.channels,
            reader.frames,
            reader.format,
        )
    chain = _chain(calls, rate, impulses, out_subtype)
    chain.configure(rate, channels)
    plan = plan_segments(chain, rate, total, round(segment_seconds * rate))
    if len(plan.segments) > 1 and kind not in EXACT_SEEK:
        whole = (Segment(0, 0, total, True),)
        why = f"not split: a {kind} decoder started mid-file gives other samples"
        return SegmentPlan(whole, 0, 0, why)
    return plan


@dataclass(frozen=True, slots=True)
class RenderedPart:
    """A part's frames, and the measurement of its input range and of its output (to merge,
    in order, with the other parts': `StreamMeter.merge`)."""

    frames: int
    input_meter: StreamMeter
    output_meter: StreamMeter


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
) -> RenderedPart:
    """Render segment `index` of `plan` into `part_path` (float32 W64) and meter its input
    and output as `process_file` would (PCM outputs metered clipped, as encoded). Raises what
    `process_file` raises for the same input range."""
    with open_input(in_path) as probe:
        rate, channels, total = probe.samplerate, probe.channels, probe.frames
    chain = _chain(calls, rate, impulses, out_subtype)
    out_rate, out_channels = chain.configure(rate, channels)
    segment = plan.segments[index]
    in_meter = StreamMeter(rate, channels)
    out_meter = StreamMeter(out_rate, out_channels)
    clip = out_subtype.upper().startswith("PCM")

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
                lo = min(max(segment.start - at, 0), n)
                hi = n if segment.last else max(min(segment.end - at, n), lo)
                if lo:
                    in_meter.warm(np.ascontiguousarray(block[:, :lo]), segment.step)
                if hi > lo:
                    in_meter.add(np.ascontiguousarray(block[:, lo:hi]))
                at += n
                yield block

    def warm(block: NDArray[np.float32]) -> None:
        out_meter.warm(np.clip(block, -1.0, 1.0) if clip else block, segment.step)

    frames = 0
    try:
        with sf.SoundFile(
            str(part_path),
            "w",
            samplerate=out_rate,
            channels=out_channels,
            format=PART_FORMAT[0],
            subtype=PART_FORMAT[1],
        ) as writer:

            def sink(block: NDArray[np.float32]) -> None:
                nonlocal frames
                writer.write(block.T)
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
    return RenderedPart(frames, in_meter, out_meter)


def stitch(
    part_paths: Sequence[Path],
    out_path: Path,
    out_format: str,
    out_subtype: str,
    block_frames: int,
    max_sample_abs: float = MAX_SAMPLE_ABS,
) -> int:
    """Encode the parts, in order, into `out_path` as `process_file` encodes a chain's output
    (same checks and clipping); returns the frames. The parts were metered as rendered."""
    with sf.SoundFile(str(part_paths[0])) as first:
        rate, channels = first.samplerate, first.channels
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
    )
