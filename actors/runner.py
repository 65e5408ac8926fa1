"""Render one audio file through an effect chain, streaming block by block.

This is the whole job minus Ray: the worker actor and the CLI's local `process` command both
call `process_file`, so a file processed either way is bit-identical. Memory is bounded by
`block_frames` plus what the effects hold, never by the file's length. No Ray here.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import soundfile as sf
from numpy.typing import NDArray

from actors.binding import Impulses, build_chain
from dsp.chain import Chain, Stopped
from dsp.denoise import ProfileOutsideSignal
from dsp.loudness import LoudnessMeter
from dsp.meters import FileMeter
from dsp.normalize import LoudnessNormalize, Normalize
from jobs.contract import AudioAnalysis, Compliance
from jobs.decoding import ContinuousReader, read_blocks
from jobs.effects import EffectCall, LoudnessStandard, album_step, loudness_targets
from jobs.errors import BadInput, JobCancelled, ProcessingFailed, UnsupportedAudio
from jobs.formats import max_frames, past_size_limit, sample_step
from jobs.probe import (
    ESTIMATED_LENGTH,
    NonFiniteAudio,
    TruncatedAudio,
    check_block,
    check_data_chunk,
)
from jobs.settings import MAX_SAMPLE_ABS

_DECODE_ERRORS = (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError)


class StreamMeter:
    """Peak, RMS, clipping, true peak and BS.1770 / EBU R128 loudness (integrated, maxima,
    range) of a stream, metered block by block as it passes (no second read of the file), in
    one fused kernel call per block (`dsp.meters.FileMeter`)."""

    def __init__(self, sample_rate: int, channels: int) -> None:
        self.sample_rate = sample_rate
        self.meter = FileMeter(sample_rate, channels)

    def add(self, block: NDArray[np.float32]) -> None:
        self.meter.add(block)

    def warm(self, block: NDArray[np.float32], first_step: int) -> None:
        """Frames just before a segment whose 100 ms step `first_step` comes next: they settle
        the filters and are not measured (see `merge`)."""
        self.meter.warm(block, first_step)

    def merge(self, later: StreamMeter) -> None:
        """Join the measurement of the next segment of the same stream (`warm`ed on the frames
        before it): the result is the unsplit stream's, up to rounding in the sums."""
        self.meter.merge(later.meter)

    def analysis(self) -> AudioAnalysis:
        m = self.meter
        return AudioAnalysis.of(
            peak_db=m.peak_db(),
            rms_db=m.rms_db(),
            loudness_lufs=m.integrated(),
            duration_seconds=m.frames / self.sample_rate,
            clipping=m.clipped,
            true_peak_db=m.true_peak_db(),
            loudness_range_lu=m.loudness_range(),
            short_term_max_lufs=m.short_term_max(),
            momentary_max_lufs=m.momentary_max(),
            dc_offset=m.dc_offset(),
        )


def measure_file(path: Path, block_frames: int = 65536) -> AudioAnalysis:
    """The full measurement of an audio file as decoded (`audio-engine analyze`, and the
    compliance check of a delivered file). Raises `UnsupportedAudio` if it cannot be read."""
    with open_input(path) as reader:
        meter = StreamMeter(reader.samplerate, reader.channels)
        try:
            for block in read_blocks(reader, block_frames):
                meter.add(block)
        except _DECODE_ERRORS as exc:
            raise UnsupportedAudio(f"decoding failed midway: {exc}") from exc
    return meter.analysis()


class Encoder:
    """The encoder boundary of a render: `write` checks, clips (PCM), meters and encodes each
    block of a chain's output into `path` (libsndfile `out_format`/`out_subtype`).

    LAME aborts the whole process on NaN, infinity or huge values, and PCM turns NaN into
    full-scale DC. PCM is clipped, so there only NaN and infinity are refused
    (`ProcessingFailed`); float and lossy outputs keep the input's bound `max_sample_abs`.
    A WAV or AIFF that would pass 4 GiB is refused (`BadInput`) naming W64. `path` may be
    a file object, left open (a part written into an output assembled in place:
    `actors.assembly`).
    """

    def __init__(
        self,
        path: Path | io.RawIOBase,
        out_format: str,
        out_subtype: str,
        sample_rate: int,
        channels: int,
        max_sample_abs: float = MAX_SAMPLE_ABS,
        metered: bool = True,
        endian: str = "FILE",
    ) -> None:
        self.meter = StreamMeter(sample_rate, channels)
        self._metered = metered
        self.frames = 0
        self._format = out_format
        self._clip = out_subtype.upper().startswith("PCM")
        self._bound = math.inf if self._clip else max_sample_abs
        self._limit = None if out_format == "RAW" else max_frames(out_format, out_subtype, channels)
        self._interleaved = np.empty((0, channels), dtype=np.float32)
        self._writer = sf.SoundFile(
            path if isinstance(path, io.RawIOBase) else str(path),
            "w",
            samplerate=sample_rate,
            channels=channels,
            format=out_format,
            subtype=out_subtype,
            endian=endian,
            closefd=False,
        )

    def __enter__(self) -> Encoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self._writer.close()

    def write(self, block: NDArray[np.float32]) -> None:
        frames = self.frames
        if self._limit is not None and frames + block.shape[1] > self._limit:
            raise past_size_limit(self._format, frames)
        try:
            check_block(block, frames, self._bound, "the effect chain's output")
        except NonFiniteAudio as exc:
            raise ProcessingFailed(f"{exc.message}; the output is discarded") from None
        # libsndfile wraps around instead of clipping when floats beyond full scale are
        # written as integers.
        out = np.clip(block, -1.0, 1.0) if self._clip else block
        if self._metered:
            self.meter.add(out)
        # libsndfile takes interleaved frames: one transposing copy, into a buffer reused
        # across blocks.
        n = out.shape[1]
        if self._interleaved.shape[0] < n:
            self._interleaved = np.empty((n, out.shape[0]), dtype=np.float32)
        np.copyto(self._interleaved[:n], out.T)
        self._writer.write(self._interleaved[:n])
        self.frames += n


@dataclass(frozen=True, slots=True)
class RenderInfo:
    """What was written: enough to describe the output file without reopening it, and the
    levels of what was read and what was written."""

    format: str
    subtype: str
    sample_rate: int
    channels: int
    frames: int
    input_analysis: AudioAnalysis | None = None
    output_analysis: AudioAnalysis | None = None
    compliance: Compliance | None = None
    loudness_reason: str = ""
    edits: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True, slots=True)
class LoudnessTrim:
    """Corrections for a re-render of a `loudness` step: extra gain, and a lower ceiling."""

    gain_db: float = 0.0
    ceiling_db: float = 0.0


def open_input(in_path: Path) -> ContinuousReader:
    """Open an input for one front-to-back read with `read_blocks` (the samples of a one-call
    decode, MP3 included: see `jobs.decoding`); `UnsupportedAudio` says why libsndfile cannot
    decode it, or that its data ends before its header says (uploads were checked by
    `jobs.probe.inspect`; this catches files that reached storage another way)."""
    try:
        reader = ContinuousReader(in_path)
    except _DECODE_ERRORS as exc:
        raise UnsupportedAudio(f"input is not decodable audio: {_reason(exc)}") from None
    try:
        if reader.samplerate <= 0 or reader.channels <= 0 or reader.frames <= 0:
            raise UnsupportedAudio("input holds no audio frames")
        check_data_chunk(reader)
    except BaseException:
        reader.close()
        raise
    return reader


def _decoded(blocks: Iterator[NDArray[np.float32]], total: int) -> Iterator[NDArray[np.float32]]:
    """`blocks`, with a decoder failing midway reported as `TruncatedAudio`."""
    read = 0
    while True:
        try:
            block = next(blocks)
        except StopIteration:
            return
        except _DECODE_ERRORS as exc:
            raise TruncatedAudio(
                f"decoding breaks after {read} of the {total} frames the header declares: the "
                f"file is truncated or damaged ({_reason(exc)})"
            ) from None
        read += block.shape[1]
        yield block


def _reason(exc: BaseException) -> str:
    """libsndfile's reason, without the path of the file in storage."""
    return str(exc.error_string) if isinstance(exc, sf.LibsndfileError) else type(exc).__name__


def _source(
    reader: ContinuousReader,
    in_path: Path,
    block_frames: int,
    max_sample_abs: float,
    meter: StreamMeter | None = None,
) -> Callable[[], Iterator[NDArray[np.float32]]]:
    """A chain's source: the first pass reads `reader`, checking (and metering) each block;
    analysis passes (normalize) read the input again, from a freshly opened decoder (a seek
    back changes MP3 samples)."""
    passes = 0

    def source() -> Iterator[NDArray[np.float32]]:
        nonlocal passes
        passes += 1
        if passes > 1:
            with open_input(in_path) as again:
                yield from read_blocks(again, block_frames)
            return
        read = 0
        for block in _decoded(read_blocks(reader, block_frames), reader.frames):
            check_block(block, read, max_sample_abs, "the file")
            if meter is not None:
                meter.add(block)
            read += block.shape[1]
            yield block
        if read != reader.frames and reader.format not in ESTIMATED_LENGTH:
            raise TruncatedAudio(
                f"the header declares {reader.frames} frames but the data holds {read}: "
                "the file is truncated or damaged"
            )

    return source


def process_file(
    in_path: Path,
    out_path: Path,
    calls: Sequence[EffectCall],
    out_format: str,
    out_subtype: str,
    block_frames: int,
    impulses: Impulses,
    progress: Callable[[float], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    max_sample_abs: float = MAX_SAMPLE_ABS,
    trim: LoudnessTrim | None = None,
    album_lufs: float | None = None,
    meter: bool = True,
    effect_seconds: list[float] | None = None,
) -> RenderInfo:
    """Stream `in_path` through `calls` into `out_path` (libsndfile `out_format`/`out_subtype`).

    Raises `UnsupportedAudio` for an undecodable or truncated input or one with a NaN, infinite
    or beyond +-`max_sample_abs` sample, `JobCancelled` when `should_stop()` turned true (polled
    between blocks; `out_path` is then incomplete: write it to a temporary name),
    `ProcessingFailed` when a kernel refuses its parameters, decoding breaks midway, or the
    chain produces a sample no encoder may be handed (NaN or infinite; for float and lossy
    outputs also beyond +-`max_sample_abs`; PCM outputs are clipped to full scale instead).
    `album_lufs`: the loudness of an album batch's files together, which the chain's album
    step (`jobs.effects.album_step`) takes as its input's instead of measuring it.
    With `meter` false the input and output are not measured (the result has no analyses).
    `effect_seconds` (one float per call): each effect's time is added to its entry.

    >>> from jobs.effects import parse_chain
    >>> info = process_file(Path("in.wav"), Path("out.wav"), parse_chain([{"gain": {"db": -3}}]),
    ...                     "WAV", "FLOAT", 65536, impulses=None)  # doctest: +SKIP
    """
    with open_input(in_path) as reader:
        sample_rate, channels, total = reader.samplerate, reader.channels, reader.frames
        chain = job_chain(calls, sample_rate, impulses, out_subtype, trim, album_lufs)
        chain.seconds = effect_seconds
        with chain_errors():
            out_sr, out_ch = chain.configure(sample_rate, channels)

        in_meter = StreamMeter(sample_rate, channels) if meter else None
        source = _source(reader, in_path, block_frames, max_sample_abs, in_meter)

        try:
            with Encoder(
                out_path, out_format, out_subtype, out_sr, out_ch, max_sample_abs, metered=meter
            ) as out:
                out_meter = out.meter if meter else None
                chain.run(source, out.write, sample_rate, channels, total, progress, should_stop)
        except Stopped as exc:
            raise JobCancelled("stopped on request") from exc
        except ProfileOutsideSignal as exc:
            # Validation checks profiles against what it can foresee (the input, trims); after
            # a silence cut only the signal decides.
            raise BadInput(str(exc)) from None
        except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
            raise ProcessingFailed(f"processing failed: {exc}") from exc
    frames = out.frames
    if frames == 0:
        # Validation refuses what it can foresee; this catches what only the signal decides.
        raise BadInput(
            "the effect chain left no audio frames (a trim past the end of the signal, or a "
            "resample of too few frames): nothing was written"
        )
    return RenderInfo(
        out_format,
        out_subtype,
        out_sr,
        out_ch,
        frames,
        input_analysis=in_meter.analysis() if in_meter is not None else None,
        output_analysis=out_meter.analysis() if out_meter is not None else None,
        loudness_reason=loudness_reason(chain),
        edits=tuple(chain.cuts()),
    )


@contextmanager
def chain_errors() -> Iterator[None]:
    """A kernel's refusal of its parameters for this input, as the job's failure."""
    try:
        yield
    except ValueError as exc:
        raise ProcessingFailed(f"invalid effect chain for this input: {exc}") from exc


def job_chain(
    calls: Sequence[EffectCall],
    sample_rate: int,
    impulses: Impulses,
    out_subtype: str,
    trim: LoudnessTrim | None = None,
    album_lufs: float | None = None,
) -> Chain:
    """The chain a job renders, whole or in parts: a re-render's `trim` on its last loudness
    step, an album batch's loudness given to its album step."""
    with chain_errors():
        chain = build_chain(calls, sample_rate, impulses, sample_step(out_subtype))
        spec_steps = [e for e in chain.effects if isinstance(e, LoudnessNormalize)]
        if spec_steps and trim is not None:
            spec_steps[-1].gain_trim_db = trim.gain_db
            spec_steps[-1].ceiling_trim_db = trim.ceiling_db
        if album_lufs is not None:
            _album_effect(chain, calls).fix_loudness(album_lufs)
    return chain


def loudness_reason(chain: Chain) -> str:
    """Why the chain's last loudness step left its input unchanged ('' when it did not)."""
    steps = [e for e in chain.effects if isinstance(e, LoudnessNormalize)]
    return steps[-1].reason if steps else ""


def album_index(calls: Sequence[EffectCall]) -> int:
    """Where an album batch's chain takes the album's loudness (`jobs.effects.album_step`)."""
    index = album_step(calls)
    if index is None:
        raise BadInput("an album batch's chain needs a loudness or normalize LOUDNESS step")
    return index


def _album_effect(chain: Chain, calls: Sequence[EffectCall]) -> Normalize | LoudnessNormalize:
    effect = chain.effects[album_index(calls)]
    assert isinstance(effect, Normalize | LoudnessNormalize), "album_step picks these"
    return effect


def measure_album(
    in_path: Path,
    calls: Sequence[EffectCall],
    block_frames: int,
    impulses: Impulses,
    progress: Callable[[float], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    max_sample_abs: float = MAX_SAMPLE_ABS,
) -> list[float]:
    """The measure phase of a job of an album batch: the BS.1770 gating-block powers of the
    signal reaching the chain's album step (its effects in front run as in a render), for
    `jobs.album` to pool with the other files'. Raises like `process_file`."""
    index = album_index(calls)
    with open_input(in_path) as reader:
        sample_rate, channels, total = reader.samplerate, reader.channels, reader.frames
        with chain_errors():
            chain = build_chain(calls[:index], sample_rate, impulses)
            rate, width = chain.configure(sample_rate, channels)
        meter = LoudnessMeter(rate, width)
        source = _source(reader, in_path, block_frames, max_sample_abs)

        def sink(block: NDArray[np.float32]) -> None:
            try:
                meter.add(block)
            except ValueError as exc:
                raise ProcessingFailed(f"the signal reaching the album step: {exc}") from None

        try:
            chain.run(source, sink, sample_rate, channels, total, progress, should_stop)
        except Stopped as exc:
            raise JobCancelled("stopped on request") from exc
        except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
            raise ProcessingFailed(f"processing failed: {exc}") from exc
    return [float(p) for p in meter.block_powers()]


MAX_RENDERS = 3
AIM_LU = 0.1
"""A render whose delivered loudness misses the target by more is rendered again (the
limiter took some loudness, or an encoder moved it) while renders remain."""
PASS_LU = 0.5
"""Delivered loudness within this of the target passes (EBU R128's tolerance for files)."""
CEILING_MARGIN_DB = 0.1
"""A re-render lowers the limiter's ceiling by the overshoot plus this."""


def judge(delivered: AudioAnalysis, target: float, ceiling: float) -> str:
    """Why `delivered` misses the spec; empty when it passes."""
    if delivered.loudness_lufs is None:
        return "the delivered file has no integrated loudness"
    problems = []
    if abs(delivered.loudness_lufs - target) > PASS_LU:
        problems.append(
            f"integrated loudness {delivered.loudness_lufs:.2f} LUFS is more than {PASS_LU} LU "
            f"from the {target:g} LUFS target"
        )
    if delivered.true_peak_db is not None and delivered.true_peak_db > ceiling:
        problems.append(
            f"true peak {delivered.true_peak_db:.2f} dBTP is over the {ceiling:g} dBTP ceiling"
        )
    return "; ".join(problems)


def render_to_spec(
    in_path: Path,
    out_path: Path,
    calls: Sequence[EffectCall],
    out_format: str,
    out_subtype: str,
    block_frames: int,
    impulses: Impulses,
    progress: Callable[[float], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    max_sample_abs: float = MAX_SAMPLE_ABS,
    album_lufs: float | None = None,
    meter: bool = True,
    effect_seconds: list[float] | None = None,
) -> RenderInfo:
    """`process_file`, and for a chain with a `loudness` step, proof that the delivered file
    meets its spec: the encoded `out_path` is decoded and measured; when it misses (a lossy
    encode pushed the true peak over the ceiling, the limiter took loudness) it is rendered
    again with a corrected gain and a lower ceiling, at most `MAX_RENDERS` times. The result
    carries the `Compliance` and the delivered file's analysis.

    An album render (`album_lufs`) is rendered once, with the album's gain: its file is not
    meant to meet the target alone (the album is), so its `Compliance` judges the ceiling only.

    `meter` false skips the analyses of a chain without a `loudness` step (for a caller that
    shows none of them). `effect_seconds`: as `process_file`'s, summed over every render.
    """
    steps = [c for c in calls if c.name == "loudness"]
    if not steps or album_lufs is not None:
        info = process_file(
            in_path, out_path, calls, out_format, out_subtype, block_frames, impulses,
            progress, should_stop, max_sample_abs=max_sample_abs, album_lufs=album_lufs,
            meter=meter or bool(steps), effect_seconds=effect_seconds,
        )  # fmt: skip
        return _album_compliance(info, out_path, steps, block_frames) if steps else info
    spec = loudness_targets(steps[-1].params)
    trim = LoudnessTrim()
    renders: list[tuple[Path, RenderInfo, AudioAnalysis, str]] = []
    try:
        while len(renders) < MAX_RENDERS:
            path = (
                out_path if not renders else out_path.with_name(f"{out_path.name}.{len(renders)}")
            )
            info = process_file(
                in_path, path, calls, out_format, out_subtype, block_frames, impulses,
                None if renders else progress, should_stop,
                max_sample_abs=max_sample_abs, trim=trim, effect_seconds=effect_seconds,
            )  # fmt: skip
            delivered = measure_file(path, block_frames)
            problem = info.loudness_reason or judge(delivered, spec.target_lufs, spec.true_peak_db)
            renders.append((path, info, delivered, problem))
            again = next_trim(spec, trim, info, delivered)
            if again is None:
                break
            trim = again
        # The best render is delivered: a passing one nearest the target, else the last.
        path, info, delivered, problem = min(
            reversed(renders),
            key=lambda r: (
                bool(r[3]),
                abs(spec.target_lufs - (r[2].loudness_lufs or 0.0)) if not r[3] else 0.0,
            ),
        )
        if path != out_path:
            os.replace(path, out_path)
    finally:
        for other, *_ in renders[1:]:
            other.unlink(missing_ok=True)
    return _with_compliance(info, delivered, spec, problem, len(renders))


def next_trim(
    spec: LoudnessStandard, trim: LoudnessTrim, info: RenderInfo, delivered: AudioAnalysis
) -> LoudnessTrim | None:
    """The corrections for another render of a `loudness` chain rendered with `trim` (`info`)
    and delivered as measured (`delivered`); None when it is close enough (or cannot do
    better: no loudness)."""
    lufs, peak = delivered.loudness_lufs, delivered.true_peak_db
    if info.loudness_reason or lufs is None:
        return None
    miss = spec.target_lufs - lufs
    over = (peak - spec.true_peak_db) if peak is not None else 0.0
    if over <= 0.0 and abs(miss) <= AIM_LU:
        return None
    ceiling = trim.ceiling_db
    if over > 0.0:
        # The encoder added `over` to what the limiter let through (which may have been
        # under its ceiling): aim that much under what was rendered.
        rendered = info.output_analysis.true_peak_db if info.output_analysis else None
        reached = min(spec.true_peak_db + ceiling, rendered or 0.0)
        ceiling = reached - over - CEILING_MARGIN_DB - spec.true_peak_db
    gain = trim.gain_db + (miss if abs(miss) > AIM_LU else 0.0)
    return LoudnessTrim(gain_db=gain, ceiling_db=ceiling)


def delivered_compliance(
    info: RenderInfo,
    out_path: Path,
    calls: Sequence[EffectCall],
    block_frames: int,
    album: bool,
    renders: int = 1,
) -> RenderInfo:
    """`info` of a render of `calls` delivered at `out_path`, with the `Compliance` of its
    chain's `loudness` step (as `render_to_spec` judges it; `album`: the ceiling only)."""
    steps = [c for c in calls if c.name == "loudness"]
    if not steps:
        return info
    if album:
        return _album_compliance(info, out_path, steps, block_frames)
    spec = loudness_targets(steps[-1].params)
    delivered = measure_file(out_path, block_frames)
    problem = info.loudness_reason or judge(delivered, spec.target_lufs, spec.true_peak_db)
    return _with_compliance(info, delivered, spec, problem, renders)


def _album_compliance(
    info: RenderInfo, out_path: Path, steps: Sequence[EffectCall], block_frames: int
) -> RenderInfo:
    spec = loudness_targets(steps[-1].params)
    delivered = measure_file(out_path, block_frames)
    peak = delivered.true_peak_db
    problem = info.loudness_reason or (
        f"true peak {peak:.2f} dBTP is over the {spec.true_peak_db:g} dBTP ceiling"
        if peak is not None and peak > spec.true_peak_db
        else ""
    )
    return _with_compliance(info, delivered, spec, problem, 1)


def _with_compliance(
    info: RenderInfo, delivered: AudioAnalysis, spec: LoudnessStandard, problem: str, renders: int
) -> RenderInfo:
    compliance = Compliance(
        integrated_lufs=delivered.loudness_lufs,
        true_peak_db=delivered.true_peak_db,
        loudness_range_lu=delivered.loudness_range_lu,
        target=spec.target_lufs,
        true_peak_limit=spec.true_peak_db,
        passed=not problem,
        renders=renders,
        reason=problem or None,
    )
    return replace(info, output_analysis=delivered, compliance=compliance)
