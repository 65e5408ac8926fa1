"""`DspWorker`: the Ray actor that owns warm kernels and an impulse-response cache.

Each actor runs one job at a time (the pool never gives it two; a lock makes sure), but has
`max_concurrency` > 1 so `cancel`, `progress` and `stats` are answered while a job runs.
`run` returns the `JobResult` as a dict; the progress it records per block is polled by the
pool. Inputs and uploaded IRs are read through `Storage.local_copy` (on object storage a
scratch copy, removed when the job ends) and the output through `Storage.writing`, which
makes it visible under its key only when the job succeeds: a cancelled or failed job leaves
no object.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import ray

from actors.assembly import assembles, finish
from actors.binding import Impulses
from actors.impulses import IRCache
from actors.metrics import WorkerMetrics
from actors.parts import RenderedPart, joined, measure_part, plan_parts, render_part, stitch
from actors.runner import (
    MAX_RENDERS,
    LoudnessTrim,
    RenderInfo,
    album_index,
    delivered_compliance,
    measure_album,
    next_trim,
    open_input,
    render_to_spec,
)
from dsp.normalize import Level
from dsp.segments import SegmentPlan
from dsp.warmup import warmup
from jobs import tracing
from jobs.contract import Edit, JobMessage, JobResult, PartsPlan
from jobs.effects import EffectCall, loudness_targets, parse_chain
from jobs.errors import EngineError, ProcessingFailed
from jobs.formats import output_format
from jobs.settings import Settings
from jobs.storage import Storage, open_storage

PRESET_RATES = (44_100, 48_000)
NAMESPACE = "audio-engine"
MAX_EARLY_CANCELS = 1000


@contextmanager
def _one_compiler() -> Iterator[None]:
    """Let one actor per node compile the kernels while the others wait, then load them from
    numba's on-disk cache: on a fresh machine two actors compiling at once on two cores take
    twice as long each. With a warm cache the wait is one cache load."""
    lock = Path(tempfile.gettempdir()) / "audio-engine-numba-warmup.lock"
    with lock.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class DspWorker:
    """One warm DSP engine. Create through `actors.pool.ActorPool`, which names it
    `<queue_prefix>-dsp-<i>` in namespace `audio-engine` and lets Ray restart it."""

    def __init__(self, settings: Settings, name: str) -> None:
        # The bridge's settings: its OTEL_* choices, whatever this node's environment says.
        tracing.setup(settings, "actor")
        with _one_compiler():
            warmup()
        self.name = name
        self.settings = settings
        self.storage = open_storage(_on_this_node(settings))
        self.cache = IRCache(settings.ir_cache_bytes)
        self.cache.preload_presets(PRESET_RATES)
        self.metrics = WorkerMetrics(name)
        self.jobs_processed = 0
        self.jobs_failed = 0
        self._job_lock = threading.Lock()
        self._current: str | None = None
        self._stop = threading.Event()
        self._doomed: set[str] = set()
        self._progress = 0.0
        self._node_id = ray.get_runtime_context().get_node_id()

    def ready(self) -> dict[str, Any]:
        """Answered once `__init__` (warm-up included) is done."""
        return self.stats()

    def stats(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "node_id": self._node_id,
            "pid": os.getpid(),
            "jobs_processed": self.jobs_processed,
            "jobs_failed": self.jobs_failed,
            "busy": self._current is not None,
            "current_job": self._current,
            "cache_hits": self.cache.hits,
            "cache_misses": self.cache.misses,
            "cache_bytes": self.cache.nbytes,
            "cached_irs": sorted(self.cache.ids()),
        }

    def cancel(self, job_id: str) -> bool:
        """Ask `job_id` to stop between blocks. A cancel may overtake its job (the pool sent
        both, the job is not started yet): it is then remembered and the job stops at once."""
        if self._current == job_id:
            self._stop.set()
            return True
        if len(self._doomed) >= MAX_EARLY_CANCELS:
            self._doomed.pop()
        self._doomed.add(job_id)
        return False

    def run(self, message_json: dict[str, Any], trace: str | None = None) -> dict[str, Any]:
        """Process one job; returns `JobResult.model_dump()`; failures raise an `EngineError`.
        Progress (0..1, per block) waits in `progress()` for the caller to poll: a plain call
        costs half of a streaming one, and a short job is over before anyone asks. `trace`:
        the caller's `traceparent`; the job's spans here are its children (`jobs.tracing`)."""
        message = JobMessage.model_validate(message_json)
        blocks: list[float] | None = None
        attributes = {"job.id": message.job_id, "job.phase": message.phase, "actor": self.name}
        with (
            tracing.span("actor run", trace, attributes=attributes),
            self._serving(message.job_id, counted=True) as clock,
        ):
            if message.phase == "measure":
                blocks = self._measure(message)
                info = RenderInfo(message.output_format, message.output_subtype, 0, 0, 0)
            else:
                info = self._render(message)
        return self._result(message, info, clock.seconds, blocks).model_dump(mode="json")

    def _result(
        self,
        message: JobMessage,
        info: RenderInfo,
        seconds: float,
        blocks: list[float] | None = None,
    ) -> JobResult:
        return JobResult(
            job_id=message.job_id,
            output_key=message.output_key,
            format=info.format,
            subtype=info.subtype,
            sample_rate=info.sample_rate,
            channels=info.channels,
            frames=info.frames,
            size_bytes=0 if blocks is not None else self.storage.size(message.output_key),
            dsp_seconds=seconds,
            actor=self.name,
            node_id=self._node_id,
            input_analysis=info.input_analysis,
            output_analysis=info.output_analysis,
            compliance=info.compliance,
            edits=[Edit(start_s=start, end_s=end) for start, end in info.edits],
            album_blocks=blocks,
        )

    def _report(self, value: float) -> None:
        self._progress = value

    @contextmanager
    def _piece(
        self, name: str, job_id: str, trace: str | None, attributes: dict[str, str | int]
    ) -> Iterator[tuple[_Clock, ExitStack]]:
        """A traced piece of a split job (`_serving`), and a stack for its scratch copies."""
        with (
            tracing.span(name, trace, attributes=attributes),
            self._serving(job_id) as clock,
            ExitStack() as stack,
        ):
            yield clock, stack

    @contextmanager
    def _serving(self, job_id: str, counted: bool = False) -> Iterator[_Clock]:
        """One piece of work for `job_id` at a time on this actor, stoppable by `cancel`;
        a failure that is not an `EngineError` becomes `ProcessingFailed`. `counted`: a
        whole job, for the metrics and `stats`."""
        with self._job_lock:
            self._current = job_id
            self._progress = 0.0
            self._stop.clear()
            if job_id in self._doomed:
                self._doomed.discard(job_id)
                self._stop.set()
            clock = _Clock()
            hits, misses = self.cache.hits, self.cache.misses
            ok = False
            try:
                yield clock
                ok = True
            except EngineError:
                raise  # pickles as itself (`EngineError.__reduce__`)
            except Exception as exc:  # a job's own failure that is not one of ours
                raise ProcessingFailed(f"{type(exc).__name__}: {exc}") from None
            finally:
                clock.stop()
                self._current = None
                if counted:
                    self.metrics.job_done(clock.seconds, ok)
                    self.metrics.cache(self.cache.hits - hits, self.cache.misses - misses)
                    if ok:
                        self.jobs_processed += 1
                    else:
                        self.jobs_failed += 1

    def plan(self, message_json: dict[str, Any], segment_seconds: float) -> dict[str, Any]:
        """How the job would be split into parts (`PartsPlan`)."""
        message = JobMessage.model_validate(message_json)
        with self._serving(message.job_id), ExitStack() as stack:
            split = self._plan(message, segment_seconds, stack).split
            bounds = [s.start for s in split.segments] + [split.segments[-1].end]
            return PartsPlan(
                bounds=bounds, reason=split.reason, measures=split.measures
            ).model_dump()

    def _plan(self, message: JobMessage, segment_seconds: float, stack: ExitStack) -> _Planned:
        """The job's input, chain and split. An album batch's `measure` job keeps the chain up
        to its album step (the last two-pass effect measured), built as `measure_album` builds
        it (no output rounding)."""
        in_path = stack.enter_context(self.storage.local_copy(message.input_key))
        calls = self._calls(message, in_path)
        fmt = output_format(message.output_format, message.output_subtype)
        subtype = fmt.subtype
        if message.phase == "measure":
            calls, subtype = calls[: album_index(calls) + 1], "FLOAT"
        impulses = self.cache.for_job(_Copies(self.storage, message.impulses, stack))
        split = plan_parts(in_path, calls, impulses, subtype, segment_seconds, message.album_lufs)
        return _Planned(in_path, calls, subtype, impulses, split)

    def measure_part(
        self,
        message_json: dict[str, Any],
        segment_seconds: float,
        index: int,
        levels: list[Level],
        trace: str | None = None,
    ) -> dict[str, Any]:
        """What the job's next two-pass effect measures of part `index` (the ones before it
        settled on `levels`); returns the `Level` and seconds of DSP. `trace`: as `run`'s."""
        message = JobMessage.model_validate(message_json)
        attributes: dict[str, str | int] = {
            "job.id": message.job_id,
            "part": index,
            "phase": len(levels),
        }
        with self._piece("actor measure part", message.job_id, trace, attributes) as (clock, stack):
            in_path, calls, subtype, impulses, split = self._plan(message, segment_seconds, stack)

            level = measure_part(
                in_path, calls, subtype, self.settings.block_frames, impulses, split, index,
                levels, self._report, self._stop.is_set, self.settings.max_sample_abs,
                message.album_lufs,
            )  # fmt: skip
        return {"level": level, "dsp_seconds": clock.seconds}

    def measured(self, message_json: dict[str, Any], level: Level) -> dict[str, Any]:
        """The `JobResult` of an album batch's `measure` job run in parts: `level` is the
        album step's, merged from every part."""
        message = JobMessage.model_validate(message_json)
        assert level.meter is not None, "an album step measures loudness"
        blocks = [float(p) for p in level.meter.block_powers()]
        info = RenderInfo(message.output_format, message.output_subtype, 0, 0, 0)
        return self._result(message, info, 0.0, blocks).model_dump(mode="json")

    def render_part(
        self,
        message_json: dict[str, Any],
        segment_seconds: float,
        index: int,
        levels: list[Level] | None = None,
        trim: LoudnessTrim | None = None,
        trace: str | None = None,
    ) -> dict[str, Any]:
        """Render part `index` of the job into storage under `part_key(job, index)`, or
        straight into the output where it is assembled in place (`_assembly`), its
        two-pass effects settled on `levels` (`measure_part`, merged); returns its frames and
        seconds of DSP. Nothing of the audio travels through Ray. `trace`: as `run`'s (a span
        for the part, one per effect inside it)."""
        message = JobMessage.model_validate(message_json)
        attributes: dict[str, str | int] = {
            "job.id": message.job_id,
            "part": index,
            "actor": self.name,
        }
        with self._piece("actor render part", message.job_id, trace, attributes) as (clock, stack):
            in_path, calls, subtype, impulses, split = self._plan(message, segment_seconds, stack)

            out_format = output_format(message.output_format, message.output_subtype).format
            assembled = self._assembly(message)
            key = part_key(message.job_id, index)
            into = assembled or stack.enter_context(self.storage.writing(key))
            with _effect_spans(calls) as seconds:
                part = render_part(
                    in_path, into, calls, subtype, self.settings.block_frames, impulses,
                    split, index, self._report, self._stop.is_set, self.settings.max_sample_abs,
                    levels or (), trim, message.album_lufs, out_format, seconds,
                    assembled=assembled is not None,
                )  # fmt: skip
        return {"part": part, "dsp_seconds": clock.seconds}

    def stitch(
        self,
        message_json: dict[str, Any],
        parts: list[RenderedPart],
        trim: LoudnessTrim | None = None,
        renders: int = 1,
        trace: str | None = None,
    ) -> dict[str, Any]:
        """Encode the job's rendered `parts` into its output (visible only when complete),
        remove them, and return the `JobResult`, levels merged from the parts', and for a
        chain with a `loudness` step the delivered file's compliance (`render_to_spec`'s),
        with `again`: the trim of another render (rendered with `trim`, the `renders`th), or
        None when this one is delivered."""
        message = JobMessage.model_validate(message_json)
        keys = [part_key(message.job_id, i) for i in range(len(parts))]
        fmt = output_format(message.output_format, message.output_subtype)
        again: LoudnessTrim | None = None
        attributes: dict[str, str | int] = {
            "job.id": message.job_id,
            "parts": len(parts),
            "actor": self.name,
        }
        with self._piece("actor stitch", message.job_id, trace, attributes) as (clock, stack):
            assembled = self._assembly(message)
            if assembled is not None:
                # The parts wrote the samples in place: the header is all that is left.
                tmp, frames = assembled, sum(p.frames for p in parts)
                out = parts[0].output_meter
                finish(tmp, fmt.format, fmt.subtype, out.sample_rate, out.meter.channels, frames)
            else:
                paths = [stack.enter_context(self.storage.local_copy(key)) for key in keys]
                tmp = stack.enter_context(self.storage.writing(message.output_key))
                frames = stitch(
                    paths, tmp, fmt.format, fmt.subtype, self.settings.block_frames,
                    self.settings.max_sample_abs,
                )  # fmt: skip
            rendered = joined(parts, fmt.format, fmt.subtype, frames)
            assert rendered.input_analysis is not None, "parts meter their input"
            # The chain as parsed for the input (the parts kept its rate and length).
            duration = rendered.input_analysis.duration_seconds
            calls = parse_chain(message.effects, rendered.sample_rate, duration)
            album = message.album_lufs is not None
            info = delivered_compliance(
                rendered, tmp, calls, self.settings.block_frames, album, renders
            )
            steps = [c for c in calls if c.name == "loudness"]
            if steps and info.output_analysis and not album and renders < MAX_RENDERS:
                spec = loudness_targets(steps[-1].params)
                again = next_trim(spec, trim or LoudnessTrim(), rendered, info.output_analysis)
            if assembled is not None:
                self.storage.adopt(assembled, message.output_key)
        for key in keys:
            self.storage.delete(key)
        result = self._result(message, info, clock.seconds).model_dump(mode="json")
        return {"result": result, "again": again}

    def discard_parts(self, job_id: str, parts: int, output_key: str = "") -> None:
        """Remove what parts of a failed or cancelled job left in storage."""
        for i in range(parts):
            self.storage.delete(part_key(job_id, i))
        assembled = self.storage.assembly(output_key) if output_key else None
        if assembled is not None:
            assembled.unlink(missing_ok=True)

    def _assembly(self, message: JobMessage) -> Path | None:
        """The output its parts write into in place, if the store and format allow it
        (`actors.assembly`); None: parts are files the stitch copies."""
        fmt = output_format(message.output_format, message.output_subtype)
        if not assembles(fmt.format, fmt.subtype):
            return None
        return self.storage.assembly(message.output_key)

    def progress(self, job_id: str) -> float | None:
        """Progress of `job_id` in 0..1 if it is the job running here (see `run`)."""
        return self._progress if self._current == job_id else None

    def _measure(self, message: JobMessage) -> list[float]:
        """`measure_album` on this call's thread; `cancel` stops it between blocks."""
        with ExitStack() as stack:
            in_path = stack.enter_context(self.storage.local_copy(message.input_key))
            calls = self._calls(message, in_path)
            uploads = _Copies(self.storage, message.impulses, stack)

            return measure_album(
                in_path,
                calls,
                self.settings.block_frames,
                self.cache.for_job(uploads),
                progress=self._report,
                should_stop=self._stop.is_set,
                max_sample_abs=self.settings.max_sample_abs,
            )

    @staticmethod
    def _calls(message: JobMessage, in_path: Path) -> tuple[EffectCall, ...]:
        with open_input(in_path) as probe:
            rate = probe.samplerate
            duration = probe.frames / rate
        return parse_chain(message.effects, rate, duration)

    def _render(self, message: JobMessage) -> RenderInfo:
        """`render_to_spec` on this call's thread; `cancel` stops it between blocks."""
        with ExitStack() as stack:
            # On object storage: scratch copies, removed when the job ends however it ends.
            in_path = stack.enter_context(self.storage.local_copy(message.input_key))
            calls = self._calls(message, in_path)
            fmt = output_format(message.output_format, message.output_subtype)
            uploads = _Copies(self.storage, message.impulses, stack)

            tmp = stack.enter_context(self.storage.writing(message.output_key))
            with _effect_spans(calls) as seconds:
                return render_to_spec(
                    in_path,
                    tmp,
                    calls,
                    fmt.format,
                    fmt.subtype,
                    self.settings.block_frames,
                    self.cache.for_job(uploads),
                    progress=self._report,
                    should_stop=self._stop.is_set,
                    max_sample_abs=self.settings.max_sample_abs,
                    album_lufs=message.album_lufs,
                    effect_seconds=seconds,
                )


@contextmanager
def _effect_spans(calls: Sequence[EffectCall]) -> Iterator[list[float] | None]:
    """When traced, the list a render adds each effect's seconds to (one float per call),
    laid out afterwards as one span per effect; None otherwise."""
    if not tracing.recording():
        yield None
        return
    seconds, started = [0.0] * len(calls), time.time_ns()
    yield seconds
    spans = [(f"effect {call.name}", s) for call, s in zip(calls, seconds, strict=True)]
    tracing.laid_end_to_end(spans, started)


class _Planned(NamedTuple):
    in_path: Path
    calls: Sequence[EffectCall]
    subtype: str
    impulses: Impulses
    split: SegmentPlan


def _on_this_node(settings: Settings) -> Settings:
    """The bridge's settings, except that with object storage a node whose `ray start` ran
    with `AUDIO_ENGINE_DATA_DIR` keeps its scratch copies there: no folder is shared."""
    node = Settings()
    if settings.storage_url and "data_dir" in node.model_fields_set:
        return settings.model_copy(update={"data_dir": node.data_dir})
    return settings


def part_key(job_id: str, index: int) -> str:
    """Where part `index` of a split job waits for the stitch."""
    return f"parts/{job_id}/{index}.w64"


class _Clock:
    def __init__(self) -> None:
        self._started = time.perf_counter()
        self.seconds = 0.0

    def stop(self) -> None:
        self.seconds = time.perf_counter() - self._started


class _Copies(Mapping[str, Path]):
    """A job's uploaded impulse responses as local files, copied only when the IR cache
    misses one (a warm actor never downloads an IR twice)."""

    def __init__(self, storage: Storage, keys: Mapping[str, str], stack: ExitStack) -> None:
        self._storage = storage
        self._keys = keys
        self._stack = stack
        self._paths: dict[str, Path] = {}

    def __getitem__(self, ir_id: str) -> Path:
        if ir_id not in self._paths:
            key = self._keys[ir_id]
            self._paths[ir_id] = self._stack.enter_context(self._storage.local_copy(key))
        return self._paths[ir_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)
