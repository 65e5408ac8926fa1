"""`ActorPool`: a fixed set of warm `DspWorker` actors the bridge runs jobs on.

One job per actor at a time; a job waits in the pool (not on an actor) until one is free, so
it goes to whichever frees first.

Actors are never restarted by Ray (`max_restarts=0`, so no lifetime restart budget can run
out): the pool replaces a dead actor with a fresh one under the same name, as often as it takes,
whether a job found it dead or the watchdog did (every `WATCH_INTERVAL_S`, idle actors are
asked for their stats). A job whose actor died of something that may have been the job itself
(the process crashed: LAME's abort on NaN, a segfault, the OOM killer) is retried only on the
same slot once it is replaced, never on a second actor; a second such death fails it as
`POISON_INPUT`. A death that is clearly not the job's (`ray.kill`, a lost node) sends it to
another actor, up to `max_attempts` (`WORKER_LOST`).

Everything here is async and never blocks the event loop: refs are awaited, and the few
blocking Ray calls (`ray.init`, `ray.nodes`, `ray.kill`) leave the loop through
`asyncio.to_thread`.

>>> pool = await ActorPool.start(Settings(pool_size=2))             # doctest: +SKIP
>>> result = await pool.run(message, on_progress=publish_progress)  # doctest: +SKIP
>>> await pool.shutdown()                                           # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import ray
from ray.actor import ActorHandle
from ray.exceptions import ActorUnavailableError, RayActorError, RayError, RayTaskError

from actors.runner import LoudnessTrim
from actors.worker import NAMESPACE, DspWorker
from dsp.normalize import Level
from dsp.segments import merged
from jobs import tracing
from jobs.contract import JobMessage, JobResult, PartsPlan
from jobs.errors import (
    EngineError,
    JobCancelled,
    JobTimeout,
    PoisonInput,
    ProcessingFailed,
    StorageNotShared,
    WorkerLost,
)
from jobs.settings import Settings

log = logging.getLogger(__name__)

ProgressCallback = Callable[[float], Awaitable[None]]
PlanCallback = Callable[[int, str], Awaitable[None]]
"""(segments, why not split or not more: '' when split as asked)."""
T = TypeVar("T")
StartCallback = Callable[[str], Awaitable[None]]

MAX_CONCURRENCY = 4  # one job plus control calls (cancel, stats) answered while it runs
REVIVE_BACKOFF_S = 1.0
REVIVE_BACKOFF_MAX_S = 30.0
REPLACE_PAUSE_S = 0.2
WATCH_INTERVAL_S = 1.0
POISON_DEATHS = 2
"""Deaths a job may cause (its actor's process crashed while running it) before it is
refused as `POISON_INPUT`."""
# What Ray 2.x (the GCS's death causes) says when an actor died of something outside the job
# it ran (see `_not_its_own`); a crashed worker process says "its worker process has died".
_NOT_ITS_OWN = (
    "killed by `ray.kill`",
    "node has died",
    "node it was running on is dead",
    "owner has died",
    "references to the actor were removed",
    "could not load it during initialization",
)
_CAUSES = ("The actor is dead because", "The actor died because")


@dataclass(eq=False)
class _Slot:
    index: int
    name: str
    handle: ActorHandle[Any]
    job_id: str | None = None
    jobs_started: int = 0
    irs: set[str] = field(default_factory=set)
    reviving: bool = False

    @property
    def busy(self) -> bool:
        return self.job_id is not None or self.reviving


@dataclass(frozen=True, slots=True)
class SplitTimes:
    """Wall seconds of a split job's phases: its parts (all at once), then the stitch; and
    each part's own render time."""

    parts_s: float
    stitch_s: float
    part_dsp_s: list[float]


JOIN_ATTEMPTS = 3
JOIN_BACKOFF_S = 2.0


def _join_ray(address: str) -> None:
    """Join an existing cluster, trying again a few times: a `ray://` head starts a server
    per client and may fail that start while it is busy or still coming up."""
    for attempt in range(1, JOIN_ATTEMPTS + 1):
        try:
            ray.init(address=address, namespace=NAMESPACE)
            return
        except ConnectionAbortedError as exc:  # ray://: the head failed to start our server
            if attempt == JOIN_ATTEMPTS:
                raise
            log.warning("joining Ray at %s failed (%s); trying again", address, exc)
            time.sleep(JOIN_BACKOFF_S * attempt)


def _init_ray(settings: Settings) -> None:
    if settings.ray_address:
        _join_ray(settings.ray_address)
    else:
        ray.init(
            namespace=NAMESPACE,
            include_dashboard=settings.ray_dashboard,
            dashboard_host="127.0.0.1",
            dashboard_port=settings.ray_dashboard_port,
            # Ray starts workers at nice 15; the actors' DSP is this node's real work and
            # must not yield the CPU to every service beside it (see docs/cluster.md).
            _system_config={"worker_niceness": 0},
        )


def _alive_nodes() -> int:
    nodes: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]
    return sum(1 for node in nodes if node.get("Alive"))


class ActorPool:
    def __init__(
        self,
        settings: Settings,
        slots: list[_Slot],
        owns_ray: bool,
        worker_cls: type[DspWorker] = DspWorker,
    ) -> None:
        self.settings = settings
        self._slots = slots
        self._owns_ray = owns_ray
        self._worker_cls = worker_cls
        self._changed = asyncio.Condition()
        self._waiting: Counter[str] = Counter()
        self._cancelled: set[str] = set()
        self._reviving: set[asyncio.Task[None]] = set()
        self._watchdog: asyncio.Task[None] | None = None
        self.replaced = 0  # actors replaced since the start: for logs, stats and tests
        self.parts_started = 0  # renders of parts of split jobs, reruns included
        self.last_split: SplitTimes | None = None  # of the last split job: logs, benchmarks

    @classmethod
    async def start(cls, settings: Settings, worker_cls: type[DspWorker] = DspWorker) -> ActorPool:
        """Join or start Ray, create the actors and return once every one is warm.
        `worker_cls` lets tests run a `DspWorker` subclass (a crashing one, say)."""
        owns_ray = not ray.is_initialized()
        if owns_ray:
            await asyncio.to_thread(_init_ray, settings)
        nodes = await asyncio.to_thread(_alive_nodes)
        if nodes > 1 and not (settings.storage_url or settings.storage_shared):
            raise StorageNotShared(
                f"the Ray cluster has {nodes} nodes but storage at {settings.storage_path} is "
                "local; set AUDIO_ENGINE_STORAGE_URL=s3://bucket/prefix, or mount it on every "
                "node and set AUDIO_ENGINE_STORAGE_SHARED=true"
            )
        resources: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
        cpus = float(resources.get("CPU", 1.0))
        size = settings.effective_pool_size(cpus)
        slots = [
            _Slot(i, _name(settings, i), _create(settings, i, worker_cls)) for i in range(size)
        ]
        pool = cls(settings, slots, owns_ray, worker_cls)
        await asyncio.gather(*(slot.handle.ready.remote() for slot in slots))
        pool._watchdog = asyncio.create_task(pool._watch(), name="actor-pool-watchdog")
        log.info("actor pool ready: %d actors on %d node(s)", size, nodes)
        return pool

    @property
    def capacity(self) -> int:
        return len(self._slots)

    def running_jobs(self) -> set[str]:
        """Jobs this pool is running or about to run (used by the bridge's recovery sweep)."""
        return {s.job_id for s in self._slots if s.job_id} | set(self._waiting)

    async def run(
        self,
        message: JobMessage,
        on_progress: ProgressCallback,
        on_start: StartCallback | None = None,
        on_plan: PlanCallback | None = None,
        input_seconds: float | None = None,
    ) -> JobResult:
        """Run a job on the least-loaded actor; retry it if its actor dies (see the module
        docstring for where).

        The job may first wait in the pool for a free actor; `on_start(actor name)` is awaited
        when one takes it (first try only), so callers can tell waiting from running.
        An input of `input_seconds` longer than twice `settings.segment_seconds` is planned
        on that actor first; `on_plan(segments, reason)` hears
        the outcome, and a split job runs as parts on several actors at once (`_run_parts`).
        Raises the job's own `EngineError` (`ProcessingFailed`, `UnsupportedAudio`...),
        `JobTimeout` after `message.timeout_s` (capped by `settings.job_timeout_s`),
        `JobCancelled` after `cancel`, `PoisonInput` after `POISON_DEATHS` crashes of the
        actor running it, or `WorkerLost` after `settings.max_attempts` deaths.
        """
        job_id = message.job_id
        body = message.model_dump(mode="json")
        seconds = self.settings.segment_seconds
        trace = tracing.traceparent()  # the caller's span: the actor's spans are its children
        try:
            long = input_seconds is not None and input_seconds > 2 * seconds
            if seconds > 0 and long:
                plan = PartsPlan.model_validate(
                    await self._attempts(
                        message,
                        lambda slot: _value(slot.handle.plan.remote(body, seconds)),
                        on_start,
                    )
                )
                on_start = None
                if on_plan is not None:
                    await on_plan(plan.count, plan.reason)
                if plan.count > 1:
                    # One span for the parts, measures and stitch; the actors' spans of each
                    # are its children.
                    with tracing.span("pool parts", attributes={"parts": plan.count}):
                        return await self._run_parts(message, plan, on_progress)
            return await self._attempts(
                message, lambda slot: self._run_on(slot, message, on_progress, trace), on_start
            )
        finally:
            self._cancelled.discard(job_id)

    async def _attempts(
        self,
        message: JobMessage,
        work: Callable[[_Slot], Awaitable[T]],
        on_start: StartCallback | None = None,
    ) -> T:
        """`work` on a free actor, again on another (or the same, see the module docstring)
        while actors die under it."""
        job_id = message.job_id
        wanted = set(message.impulses)
        failed_on: set[str] = set()
        reasons: list[str] = []
        crashes = 0
        only: _Slot | None = None
        for _attempt in range(self.settings.max_attempts):
            slot = await self._acquire(job_id, wanted, failed_on, only)
            try:
                if on_start is not None and not reasons:
                    await on_start(slot.name)
                result = await work(slot)
            except RayActorError as exc:
                reasons.append(f"{slot.name}: {_reason(exc)}")
                await self._release(slot, revive=True)
                if _not_its_own(exc):
                    log.warning("job %s lost its actor %s; retrying", job_id, slot.name)
                    failed_on.add(slot.name)
                    only = None
                    continue
                crashes += 1
                if crashes >= POISON_DEATHS:
                    raise PoisonInput(
                        f"the job crashed the process of its actor {crashes} times; it is not "
                        "tried again: " + "; ".join(reasons)
                    ) from None
                # Maybe the job's fault: try once more, but only where it already did harm.
                log.warning("job %s crashed its actor %s; retrying there", job_id, slot.name)
                only = slot
                continue
            except BaseException:
                await self._release(slot)
                raise
            slot.irs |= wanted
            await self._release(slot)
            return result
        raise WorkerLost(
            f"the actor running the job died {len(reasons)} times: " + "; ".join(reasons)
        )

    async def _run_parts(
        self, message: JobMessage, plan: PartsPlan, on_progress: ProgressCallback
    ) -> JobResult:
        """Each part on whichever actor is free, all at once; a part whose actor dies runs
        again alone. A chain with two-pass effects (normalize, loudness) first measures them,
        one phase each: every part measures the signal reaching the effect, the measurements
        merge in order into the whole stream's, and the parts then render with the effect
        settled on it. Then the stitch, which merges the parts' measurements (and judges a
        `loudness` step's delivery: a miss renders the parts again with its correction, as
        `render_to_spec` does). Progress is the parts' progress weighted by their length,
        over the phases; parts left behind by a failure are removed."""
        body = message.model_dump(mode="json")
        seconds = self.settings.segment_seconds
        trace = tracing.traceparent()  # the "pool parts" span: the actors' spans' parent
        total = max(plan.bounds[-1], 1)
        phases = plan.measures + (message.phase == "render")
        done = [0.0] * plan.count
        dsp_seconds = 0.0

        def each(phase: int, method: str, *args: Any) -> Awaitable[list[dict[str, Any]]]:
            """`method` on every part at once; a `phase` past the last is not reported (a
            re-render, after progress reached 1, as `render_to_spec` does)."""
            done[:] = [0.0] * plan.count

            def part(index: int) -> Awaitable[dict[str, Any]]:
                share = (plan.bounds[index + 1] - plan.bounds[index]) / total

                async def report(value: float) -> None:
                    done[index] = value * share
                    if phase < phases:
                        await on_progress(min((phase + sum(done)) / phases, 1.0))

                def work(slot: _Slot) -> Awaitable[Any]:
                    self.parts_started += 1
                    call = getattr(slot.handle, method)
                    ref = lambda: call.remote(body, seconds, index, *args, trace=trace)  # noqa: E731
                    return self._call(slot, message, ref, report)

                return self._attempts(message, work)

            return _all(part(i) for i in range(plan.count))

        try:
            started = time.perf_counter()
            levels: list[Level] = []
            for phase in range(plan.measures):
                found = await each(phase, "measure_part", list(levels))
                dsp_seconds += sum(p["dsp_seconds"] for p in found)
                levels.append(merged([p["level"] for p in found]))
            if message.phase == "measure":
                # An album batch's measure job: the last phase measured its album step.
                measured = await self._attempts(
                    message,
                    lambda slot: self._call(
                        slot, message, lambda: slot.handle.measured.remote(body, levels[-1])
                    ),
                )
                return JobResult.model_validate(measured).model_copy(
                    update={"dsp_seconds": dsp_seconds, "segments": plan.count}
                )
            trim: LoudnessTrim | None = None
            tried: list[tuple[LoudnessTrim | None, dict[str, Any]]] = []
            while True:
                phase = plan.measures if not tried else phases
                parts = await each(phase, "render_part", levels, trim)
                dsp_seconds += sum(p["dsp_seconds"] for p in parts)
                stitching = time.perf_counter()
                stitched = await self._stitch(
                    message, [p["part"] for p in parts], trim, len(tried) + 1
                )
                tried.append((trim, stitched["result"]))
                if stitched["again"] is None:
                    break
                trim = stitched["again"]
            best = _best_render(tried)
            if best is not tried[-1]:
                # `render_to_spec` keeps each render and delivers the best; a render is a
                # function of its trim, so the best is rendered again instead.
                parts = await each(phases, "render_part", levels, best[0])
                dsp_seconds += sum(p["dsp_seconds"] for p in parts)
                stitching = time.perf_counter()
                rendered = [p["part"] for p in parts]
                stitched = await self._stitch(message, rendered, best[0], len(tried))
        except BaseException:
            await self._discard_parts(message, plan.count)
            raise
        result = JobResult.model_validate(stitched["result"])
        self.last_split = SplitTimes(
            parts_s=stitching - started,
            stitch_s=time.perf_counter() - stitching,
            part_dsp_s=[p["dsp_seconds"] for p in parts],
        )
        log.info("job %s in %d parts: %s", message.job_id, plan.count, self.last_split)
        return result.model_copy(
            update={
                "dsp_seconds": result.dsp_seconds + dsp_seconds,
                "segments": plan.count,
            }
        )

    async def _stitch(
        self,
        message: JobMessage,
        rendered: list[Any],
        trim: LoudnessTrim | None,
        renders: int,
    ) -> dict[str, Any]:
        body = message.model_dump(mode="json")
        trace = tracing.traceparent()
        result: dict[str, Any] = await self._attempts(
            message,
            lambda slot: self._call(
                slot,
                message,
                lambda: slot.handle.stitch.remote(body, rendered, trim, renders, trace=trace),
            ),
        )
        return result

    async def _discard_parts(self, message: JobMessage, parts: int) -> None:
        job_id = message.job_id
        for slot in self._slots:
            try:
                ref: Any = slot.handle.discard_parts.remote(job_id, parts, message.output_key)
                await asyncio.shield(ref)
                return
            except RayError as exc:
                log.debug("removing parts of %s on %s: %s", job_id, slot.name, exc)

    async def cancel(self, job_id: str) -> bool:
        """Stop a job this pool is running or holding; False if it knows no such job."""
        slots = [s for s in self._slots if s.job_id == job_id]
        if not slots and job_id not in self._waiting:
            return False
        self._cancelled.add(job_id)
        async with self._changed:
            self._changed.notify_all()
        for slot in slots:  # a split job runs on several
            await _quiet(slot.handle.cancel.remote(job_id))
        return True

    async def stats(self, timeout_s: float | None = None) -> list[dict[str, Any]]:
        """One dict per actor (see `DspWorker.stats`); a dead actor, or one that did not
        answer within `timeout_s` (a replacement still warming up), reports its error."""
        answers = await asyncio.gather(
            *(asyncio.wait_for(_value(s.handle.stats.remote()), timeout_s) for s in self._slots),
            return_exceptions=True,
        )
        return [
            a if isinstance(a, dict) else {"name": s.name, "error": repr(a)}
            for s, a in zip(self._slots, answers, strict=True)
        ]

    async def shutdown(self) -> None:
        """Kill the actors, and Ray itself if this pool started it."""
        if self._watchdog is not None:
            self._watchdog.cancel()
            await asyncio.gather(self._watchdog, return_exceptions=True)
        for task in list(self._reviving):
            task.cancel()
        await asyncio.gather(*self._reviving, return_exceptions=True)
        for slot in self._slots:
            await asyncio.to_thread(ray.kill, slot.handle)
        if self._owns_ray:
            await asyncio.to_thread(ray.shutdown)

    async def _acquire(
        self, job_id: str, wanted: set[str], avoid: set[str], only: _Slot | None = None
    ) -> _Slot:
        self._waiting[job_id] += 1
        try:
            async with self._changed:
                while True:
                    if job_id in self._cancelled:
                        raise JobCancelled("cancelled before it started")
                    free = [s for s in self._slots if not s.busy and only in (None, s)]
                    if free:
                        slot = min(free, key=lambda s: _preference(s, wanted, avoid))
                        slot.job_id = job_id
                        slot.jobs_started += 1
                        return slot
                    await self._changed.wait()
        finally:
            self._waiting[job_id] -= 1
            if not self._waiting[job_id]:
                del self._waiting[job_id]

    async def _release(self, slot: _Slot, revive: bool = False) -> None:
        async with self._changed:
            slot.job_id = None
            if revive:
                self._start_revive(slot)
            self._changed.notify_all()

    def _start_revive(self, slot: _Slot) -> None:
        """No job goes to the actor until it answers again; a job that lost it retries on
        another one meanwhile (or waits for this one, see `run`)."""
        if slot.reviving:
            return
        slot.reviving = True
        task = asyncio.create_task(self._revive(slot), name=f"revive-{slot.name}")
        self._reviving.add(task)
        task.add_done_callback(self._reviving.discard)

    async def _revive(self, slot: _Slot) -> None:
        """Wait until the slot's actor answers again, replacing it with a fresh one while Ray
        reports it dead. Never gives up: a slot left with a dead actor would fail every job
        sent to it, and enough of them would leave the pool with none."""
        delay, pause = REVIVE_BACKOFF_S, REPLACE_PAUSE_S
        try:
            while True:
                try:
                    async with asyncio.timeout(self.settings.job_timeout_s):
                        await slot.handle.ready.remote()
                    return
                except ActorUnavailableError as exc:  # not known dead: maybe a network blip
                    log.warning("actor %s unreachable: %s", slot.name, _reason(exc))
                except RayActorError as exc:  # dead, and Ray never restarts pool actors
                    log.warning("actor %s is dead (%s); replacing it", slot.name, _reason(exc))
                    await self._replace(slot)
                    await asyncio.sleep(pause)  # warm-up takes longer; this bounds a loop
                    pause = min(pause * 2, REVIVE_BACKOFF_MAX_S)
                    continue
                except (RayError, TimeoutError) as exc:
                    log.warning("actor %s not back yet: %s", slot.name, _reason(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, REVIVE_BACKOFF_MAX_S)
        finally:
            async with self._changed:
                slot.reviving = False
                self._changed.notify_all()

    async def _replace(self, slot: _Slot) -> None:
        """A fresh actor under the slot's name (Ray frees the name of a dead actor; should it
        hand the dead one back, `_revive` finds it dead again and tries later)."""
        try:
            await asyncio.to_thread(ray.kill, slot.handle, no_restart=True)
        except RayError as exc:
            log.debug("killing dead actor %s: %s", slot.name, exc)
        slot.handle = await asyncio.to_thread(_create, self.settings, slot.index, self._worker_cls)
        slot.irs.clear()
        self.replaced += 1

    async def _watch(self) -> None:
        """Find actors that died while idle (no job would notice them) and revive them; a
        failed round is logged and the next one tried, so the watch never ends by itself."""
        while True:
            await asyncio.sleep(WATCH_INTERVAL_S)
            try:
                await self._watch_once()
            except Exception as exc:
                log.warning("watching the actors failed; trying again: %r", exc)

    async def _watch_once(self) -> None:
        idle = [s for s in self._slots if not s.busy]
        answers = await asyncio.gather(
            *(asyncio.wait_for(_value(s.handle.stats.remote()), WATCH_INTERVAL_S) for s in idle),
            return_exceptions=True,
        )
        async with self._changed:
            for slot, answer in zip(idle, answers, strict=True):
                if isinstance(answer, RayActorError) and not slot.busy:
                    log.warning("idle actor %s is dead; replacing it", slot.name)
                    self._start_revive(slot)
                    self._changed.notify_all()

    async def _polled(
        self, slot: _Slot, job_id: str, ref: Any, on_progress: ProgressCallback | None
    ) -> Any:
        """The job as one plain call, its progress polled every `progress_interval_s` from the
        first interval on. A plain call costs half of a Ray streaming generator (which Ray
        Client does not carry anyway), and a short job ends before the first poll."""
        done: asyncio.Task[Any] = asyncio.create_task(_value(ref))
        if on_progress is None:
            return await done
        interval_s = max(self.settings.progress_interval_s, 0.05)
        poller = asyncio.create_task(_poll_progress(slot, job_id, done, interval_s, on_progress))
        try:
            value = await done
        finally:
            poller.cancel()
            await asyncio.gather(poller, return_exceptions=True)
        return value

    async def _run_on(
        self,
        slot: _Slot,
        message: JobMessage,
        on_progress: ProgressCallback,
        trace: str | None = None,
    ) -> JobResult:
        body = message.model_dump(mode="json")
        value = await self._call(
            slot, message, lambda: slot.handle.run.remote(body, trace), on_progress
        )
        return JobResult.model_validate(value)

    async def _call(
        self,
        slot: _Slot,
        message: JobMessage,
        call: Callable[[], Any],
        on_progress: ProgressCallback | None = None,
    ) -> Any:
        """Await one actor call for the job (`call()` makes its ref), its progress polled,
        within the job's time limit; the actor's `EngineError` is raised as itself."""
        job_id = message.job_id
        if job_id in self._cancelled:
            raise JobCancelled("cancelled before it started")
        limit_s = min(message.timeout_s, self.settings.job_timeout_s)
        try:
            async with asyncio.timeout(limit_s):
                result = await self._polled(slot, job_id, call(), on_progress)
        except TimeoutError:
            await _quiet(slot.handle.cancel.remote(job_id))
            raise JobTimeout(f"the job ran longer than its limit of {limit_s:g} s") from None
        except asyncio.CancelledError:
            await asyncio.shield(_quiet(slot.handle.cancel.remote(job_id)))
            raise
        except RayTaskError as exc:
            cause = exc.cause
            if isinstance(cause, EngineError):
                raise cause from None
            if isinstance(cause, RayActorError):
                raise cause from None
            raise ProcessingFailed(f"the actor raised: {cause!r}") from None
        if result is None:
            raise ProcessingFailed("the actor finished without a result")
        return result


async def _poll_progress(
    slot: _Slot, job_id: str, done: asyncio.Future[Any], interval_s: float, on_progress: Any
) -> None:
    last: float | None = None
    while not done.done():
        await asyncio.wait({done}, timeout=interval_s)
        if done.done():
            return
        try:
            value: float | None = await slot.handle.progress.remote(job_id)
        except RayError:
            return  # the job's own call reports what happened to the actor
        if value is not None and value != last:
            last = value
            await on_progress(float(value))


def _create(
    settings: Settings, index: int, worker_cls: type[DspWorker] = DspWorker
) -> ActorHandle[Any]:
    remote_cls: Any = ray.remote(worker_cls)
    return remote_cls.options(  # type: ignore[no-any-return]
        name=_name(settings, index),
        namespace=NAMESPACE,
        get_if_exists=True,
        max_restarts=0,  # the pool replaces dead actors itself (`ActorPool._revive`)
        max_task_retries=0,
        max_concurrency=MAX_CONCURRENCY,
        num_cpus=settings.actor_num_cpus,
        # One actor per node before two on any node: a pool as large as the cluster's nodes
        # uses every node, and a node's loss takes as few actors as possible with it.
        scheduling_strategy="SPREAD",
    ).remote(settings, _name(settings, index))


def _name(settings: Settings, index: int) -> str:
    return f"{settings.queue_prefix}-dsp-{index}"


def _preference(slot: _Slot, wanted: Iterable[str], avoid: set[str]) -> tuple[int, int, int]:
    """Sort key among free actors: not one that just failed this job, then the one holding
    most of the job's uploaded IRs, then the one that ran fewest jobs (spread the work)."""
    held = len(slot.irs.intersection(wanted))
    return (slot.name in avoid, -held, slot.jobs_started)


def _not_its_own(exc: RayActorError) -> bool:
    """True when Ray says the actor died of something outside the job it ran: killed on
    purpose, its node or owner gone, or only unreachable. A crashed process (SIGABRT,
    SIGSEGV, the OOM killer...) may be the job's doing, so it is False."""
    if isinstance(exc, ActorUnavailableError) or exc.preempted:
        return True
    text = str(exc)
    return any(marker in text for marker in _NOT_ITS_OWN)


def _reason(exc: BaseException) -> str:
    """One line for logs and job errors: Ray's cause of death when it gives one ("The actor
    is dead because it was killed by `ray.kill`"), else the message's first line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    cause = next((line for line in lines if line.startswith(_CAUSES)), None)
    if cause is None:
        return lines[0] if lines else type(exc).__name__
    exit_type = re.search(r"Worker exit type: (\w+)", cause)
    first = cause.split(". ")[0].rstrip(".")
    return f"{first} ({exit_type[1]})" if exit_type else first


async def _value(ref: Any) -> Any:
    return await ref


def _best_render(
    tried: list[tuple[LoudnessTrim | None, dict[str, Any]]],
) -> tuple[LoudnessTrim | None, dict[str, Any]]:
    """The render `render_to_spec` delivers of those `tried` (trim, result): a passing one
    nearest the target, else the last."""

    def key(render: tuple[LoudnessTrim | None, dict[str, Any]]) -> tuple[bool, float]:
        compliance = render[1].get("compliance")
        if not compliance:
            return (False, 0.0)
        if not compliance["passed"]:
            return (True, 0.0)
        lufs = float(compliance["integrated_lufs"] or 0.0)
        return (False, abs(float(compliance["target"]) - lufs))

    best: tuple[LoudnessTrim | None, dict[str, Any]] = min(reversed(tried), key=key)
    return best


async def _all(awaitables: Iterable[Awaitable[Any]]) -> list[Any]:
    """Every result, in order; the first failure cancels the rest (and is raised once they
    ended, so nothing still writes parts when the caller removes them)."""
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def _quiet(ref: Any) -> None:
    """Await a control call whose failure (actor already gone) changes nothing."""
    try:
        await ref
    except RayError as exc:
        log.debug("control call failed: %s", exc)
